use super::*;

#[test]
fn backend_names_parse_both_ways_and_others_are_refused_with_the_list() {
    for b in BackendChoice::ALL {
        assert_eq!(b.name().parse::<BackendChoice>().unwrap(), b);
    }
    assert_eq!(
        "LibTorch".parse::<BackendChoice>().unwrap(),
        BackendChoice::Libtorch
    );
    let err = "tpu".parse::<BackendChoice>().unwrap_err().to_string();
    assert!(
        err.contains("\"tpu\"") && err.contains("auto, cpu, wgpu, cuda, libtorch, cubecl-cpu"),
        "{err}"
    );
}

#[test]
fn device_specs_are_a_count_or_distinct_indices() {
    let ok = |s: &str| s.parse::<DeviceSpec>().unwrap();
    assert_eq!(ok("4"), DeviceSpec::Count(4));
    assert_eq!(ok(" 0, 1 ,2"), DeviceSpec::List(vec![0, 1, 2]));
    assert_eq!(ok("3,"), DeviceSpec::List(vec![3]));
    assert_eq!(ok("0,1,"), DeviceSpec::List(vec![0, 1]));
    for s in ["4", "3,", "0,1,2"] {
        assert_eq!(ok(s).to_string(), s, "shown as written");
    }
    for bad in ["0", "", ",", "3,,", "1,,2", "1,1", "+2", "-1", "a", "1.5"] {
        let e = bad.parse::<DeviceSpec>().unwrap_err();
        assert_eq!((e.option, e.value.as_str()), ("devices", bad));
    }
    let cpu = select(BackendChoice::Cpu).unwrap();
    assert_eq!(
        cpu.devices(&ok("3")).unwrap().len(),
        3,
        "replicas of the one CPU"
    );
    assert_eq!(cpu.devices(&ok("0,")).unwrap().len(), 1);
    let e = cpu.devices(&ok("0,1")).unwrap_err();
    let e = e
        .downcast_ref::<InvalidOption>()
        .expect("named by its option");
    assert_eq!((e.option, e.value.as_str()), ("devices", "0,1"));
    assert!(e.accepted.contains("the one device of backend"), "{e}");
}

#[test]
fn cpu_and_auto_find_the_cpu_here() {
    let cpu = select(BackendChoice::Cpu).unwrap();
    assert_eq!(cpu.kind, Kind::Cpu);
    assert!(cpu.name.starts_with("cpu"), "{}", cpu.name);
    assert!(cpu.in_host_memory());
    assert_eq!(Some(cpu.device), cpu_device());
    // No GPU backend or LibTorch in the default build: auto falls back to the CPU.
    if !cfg!(any(feature = "cuda", feature = "wgpu", feature = "tch")) {
        assert_eq!(select(BackendChoice::Auto).unwrap().kind, Kind::Cpu);
    }
    // Linux says how much memory is free; this machine has some.
    if cfg!(target_os = "linux") {
        assert!(available_memory().unwrap() > 1 << 20);
    }
}

#[test]
fn test_device_follows_mla_lab_test_backend() {
    let asked = std::env::var("MLA_LAB_TEST_BACKEND").unwrap_or_default();
    let device = test_device();
    match asked.as_str() {
        "" | "cpu" => assert_eq!(Some(device), cpu_device()),
        #[cfg(feature = "tch")]
        "libtorch" => assert_eq!(device, libtorch_device().device),
        #[cfg(feature = "wgpu")]
        "wgpu" => assert_eq!(Some(device), wgpu_first()),
        #[cfg(feature = "cuda")]
        "cuda" => assert_eq!(Some(device), cuda_device()),
        #[cfg(feature = "cubecl-cpu")]
        "cubecl-cpu" => assert_eq!(device, cubecl_cpu_picked().device),
        other => panic!("test_device accepted {other:?}"),
    }
}

/// Where the only wgpu adapter is a software rasterizer (Mesa's llvmpipe: `apt-get install
/// mesa-vulkan-drivers` on a machine without a GPU), `auto` trains on the CPU and `wgpu`
/// takes the adapter, named as software. Meaningful in a `--features wgpu` build.
#[test]
fn auto_never_takes_a_software_adapter() {
    let auto = select(BackendChoice::Auto).unwrap();
    assert_ne!(auto.kind, Kind::Wgpu { software: true }, "{}", auto.name);
    #[cfg(feature = "wgpu")]
    if let Ok(wgpu) = select(BackendChoice::Wgpu)
        && wgpu.kind == (Kind::Wgpu { software: true })
    {
        assert!(wgpu.name.ends_with(SOFTWARE), "{}", wgpu.name);
        assert!(wgpu.in_host_memory());
        assert!(wgpu.max_allocation.is_some_and(|cap| cap > 0), "{wgpu:?}");
        let gpus = wgpu_gpu();
        if gpus.is_none() && !cfg!(any(feature = "cuda", feature = "tch")) {
            assert_eq!(auto.kind, Kind::Cpu, "{}", auto.name);
        }
    }
}

#[test]
fn a_backend_not_compiled_in_is_a_clear_error() {
    if !cfg!(feature = "cuda") {
        let err = select(BackendChoice::Cuda).unwrap_err().to_string();
        assert!(
            err.contains("--features cuda") && err.contains("compiled:"),
            "{err}"
        );
    }
    if !cfg!(feature = "wgpu") {
        let err = select(BackendChoice::Wgpu).unwrap_err().to_string();
        assert!(err.contains("--features wgpu"), "{err}");
    }
    if !cfg!(feature = "tch") {
        let err = select(BackendChoice::Libtorch).unwrap_err().to_string();
        assert!(err.contains("--features tch"), "{err}");
    }
    if !cfg!(feature = "cubecl-cpu") {
        let err = select(BackendChoice::CubeclCpu).unwrap_err().to_string();
        assert!(err.contains("--features cubecl-cpu"), "{err}");
    }
}
