//! What a study does with a finished run: its eval, probes, example continuations and judge,
//! each kept while it answers the question asked and redone when it does not.

use anyhow::{Result, bail};
use burn::tensor::Device;

use super::options::StudyOptions;
use super::stale::{stale_eval, stale_probes};
use crate::artifacts::RunFolder;
use crate::artifacts::run::Run;
use crate::artifacts::tensorboard;
use crate::eval::EvalOptions;
use crate::eval::probes;
use crate::files::write_json;
use crate::infer::generate;

/// One line of a study's progress: what it does now to run `name`.
pub(super) fn step(name: &str, what: &str) {
    println!("study: {name}: {what}");
}

/// Tokens each of a run's example continuations may run to.
const SAMPLE_TOKENS: usize = 96;

/// Eval, probes, example continuations and judge of one finished run (and of a converted
/// run, the loss its conversion cost), each skipped when its file exists; eval and probes are
/// redone when they answer another question (`stale_eval`, `stale_probes`) and the weights are
/// there to redo them.
pub fn analyse(folder: &RunFolder, opts: &StudyOptions, device: &Device) -> Result<()> {
    let name = folder.name();
    // A converted run: what the conversion cost, before fine-tuning, while its weights are here.
    if folder.start_weights().exists() && !folder.conversion_eval().exists() {
        step(
            &name,
            "eval of the conversion (the source and the converted weights)",
        );
        let cache = RunFolder::token_cache(&opts.artifacts);
        let measured = super::convert::measure(folder, opts.eval_windows, cache, device)?;
        write_json(&folder.conversion_eval(), &measured)?;
    }
    let stale = stale_probes(folder, &opts.probes)?;
    let stale_loss = stale_eval(folder, opts)?;
    let weights = folder.weights_to_load().is_some();
    for (what, why) in [("eval", &stale_loss), ("probes", &stale)] {
        if let Some(why) = why
            && !weights
        {
            step(
                &name,
                &format!("{what} kept ({why}): no weights here to redo them"),
            );
        }
    }
    let probe_due = !folder.probes().exists() || (stale.is_some() && weights);
    let eval_due = !folder.eval().exists() || (stale_loss.is_some() && weights);
    let judged = opts.judge.is_none() || folder.judge().exists();
    let done = !probe_due && !eval_due && folder.samples().exists();
    // Nothing left to measure (a run restored from its records has no weights to load).
    if done && judged {
        return Ok(());
    }
    if !weights {
        let due: Vec<String> = [folder.eval(), folder.probes(), folder.samples()]
            .iter()
            .chain(opts.judge.as_ref().map(|_| folder.judge()).as_slice())
            .filter(|f| !f.exists())
            .map(|f| f.display().to_string())
            .collect();
        bail!(
            "{}: no weights to measure what is missing ({}): a run restored from its records \
             cannot be measured again; put the files back{}, or remove the folder and its \
             records entry to train the run again",
            folder.dir.display(),
            due.join(", "),
            if opts.judge.is_some() && !folder.judge().exists() {
                ", run without the judge"
            } else {
                ""
            }
        );
    }
    let run = Run::load(&folder.dir, device)?;
    if eval_due {
        match &stale_loss {
            Some(why) => step(&name, &format!("eval again ({why})")),
            None => step(&name, "eval"),
        }
        let loss_only =
            EvalOptions::loss_only(opts.eval_windows, RunFolder::token_cache(&opts.artifacts));
        let loss = crate::eval::evaluate(&run, &loss_only)?.loss;
        write_json(&folder.eval(), &loss)?;
        // A watcher's view only: a failure to write it does not fail the evaluation.
        if let Ok(Some(summary)) = folder.finished() {
            let scalars = [(tensorboard::EVAL_LOSS, loss.loss)];
            let _ = tensorboard::append_scalars(&folder.tensorboard(), summary.steps, &scalars);
        }
    }
    if probe_due {
        match &stale {
            Some(why) => step(&name, &format!("probes again ({why})")),
            None => step(&name, "probes"),
        }
        let r = probes::run(&run.model, &run.tokenizer, &run.experiment, &opts.probes)?;
        write_json(&folder.probes(), &r)?;
    }
    let samples_file = folder.samples();
    if !samples_file.exists() {
        step(&name, "samples");
        let samples = generate::samples(&run.model, &run.tokenizer, SAMPLE_TOKENS)?;
        write_json(&samples_file, &samples)?;
    }
    if let Some((judge, n)) = &opts.judge {
        let judge_file = folder.judge();
        if !judge_file.exists() {
            step(&name, "judge");
            let stories = probes::for_judge(&run, &opts.probes, *n)?;
            write_json(&judge_file, &crate::eval::judge::judge(judge, &stories)?)?;
        }
    }
    Ok(())
}
