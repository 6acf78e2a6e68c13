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

/// Probes of every held-out story answer a study that asks for more than there are: they are
/// not redone at every later study.
#[test]
fn probes_of_every_held_out_story_answer_a_request_for_more() {
    let scratch = crate::data::Scratch::new("stale-probes");
    let folder = RunFolder::new(&scratch.0);
    let committed = crate::files::source("docs/results-tiny/runs/mha_tiny-s1");
    for f in ["experiment.ron", "probes.json"] {
        std::fs::copy(committed.join(f), scratch.0.join(f)).unwrap();
    }
    let exp = crate::experiment::Experiment::load(folder.experiment()).unwrap();
    let held_out = crate::eval::probes::held_out_count(&exp).unwrap();
    let mut report: ProbeReport = read_json(&folder.probes()).unwrap().unwrap();
    let ask = |stories| ProbeOptions {
        stories,
        ..ProbeOptions::default()
    };
    report.stories = held_out;
    crate::files::write_json(&folder.probes(), &report).unwrap();
    assert_eq!(stale_probes(&folder, &ask(held_out + 500)).unwrap(), None);
    assert_eq!(stale_probes(&folder, &ask(held_out)).unwrap(), None);
    assert!(stale_probes(&folder, &ask(held_out - 1)).unwrap().is_some());
}
