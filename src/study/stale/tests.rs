use burn::tensor::Device;

use super::*;
use crate::artifacts::records::CacheFill;
use crate::infer::bench::bench;
use crate::infer::bench::tests::{zoo, zoo_options};

/// Each model's bench rows answer the options that made them, and no others.
#[test]
fn a_bench_answers_the_options_that_made_it_and_no_others() {
    let device: Device = crate::backend::test_device();
    let subjects = zoo(&device);
    let opts = zoo_options();
    let configs: Vec<(String, GptConfig)> = subjects
        .iter()
        .map(|s| (s.name.clone(), s.config.clone()))
        .collect();
    let rows = bench(subjects, &opts, &device, |_| {}).unwrap();
    // Each model's rows answer the options that made them, and no others.
    for (name, config) in &configs {
        let own: Vec<BenchRow> = rows
            .iter()
            .filter(|r| &r.experiment == name)
            .cloned()
            .collect();
        assert_eq!(stale_bench(&own, &opts, config), None, "{name}");
        let other = |o: BenchOptions| stale_bench(&own, &o, config).is_some();
        assert!(other(BenchOptions {
            batches: vec![1],
            ..opts.clone()
        }));
        assert!(other(BenchOptions {
            contexts: vec![8, 12],
            ..opts.clone()
        }));
        assert!(other(BenchOptions {
            fill: CacheFill::Random,
            ..opts.clone()
        }));
        assert!(other(BenchOptions {
            repeats: 2,
            ..opts.clone()
        }));
        assert!(other(BenchOptions {
            decode_tokens: 2,
            ..opts.clone()
        }));
        // A context beyond the model's is skipped, asked or not.
        assert_eq!(
            stale_bench(
                &own,
                &BenchOptions {
                    contexts: vec![8, 16],
                    ..opts.clone()
                },
                config
            ),
            None
        );
    }
}
