//! `mla-lab train`: one experiment file → a trained model and a complete record in
//! `artifacts/<name>/`.
//!
//! burn-train's learner validates and checkpoints once per epoch, so one learner epoch is
//! `eval_every` optimizer steps ([`StepLoader`]): validation and a checkpoint (model,
//! optimizer, scheduler) every `eval_every` steps, the last `keep_checkpoints` kept. The data
//! position is the step itself, so `--resume` continues at the step of the last checkpoint
//! with the same schedule and data order.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::transform::PartialDataset;
use burn::tensor::{DType, Device, Int, Tensor};
use burn::train::logger::InMemoryMetricLogger;
use burn::train::metric::{LearningRateMetric, LossMetric};
use burn::train::renderer::tui::TuiMetricsRendererWrapper;
use burn::train::{Interrupter, Learner, SupervisedTraining};

use super::checkpoint::{self, AtomicCheckpointer, EveryNKeepLast};
pub use super::events::TrainEvent;
pub use super::folder::FolderError;
use super::folder::{Open, Opening, open_folder};
use super::loader::StepLoader;
use super::optim::{lr_schedule, optimizer};
pub use super::options::{Display, Strategy, TrainOptions};
use super::placement::{Placement, place, remedy};
use super::preflight::{self, Projection};
use super::renderer::{RenderPlan, RunRecord, StepRenderer};
use crate::artifacts::metrics;
use crate::artifacts::records::TrainSummary;
use crate::artifacts::tensorboard;
use crate::artifacts::{RunFolder, checkpoints, load_weights, save_weights};
use crate::data::config::TokenizerConfig;
use crate::data::dataset::{TokenBatch, TokenBatcher, TokenWindows};
use crate::data::tokens::{self, TokenData};
use crate::experiment::Experiment;
use crate::files;
use crate::model::Gpt;

/// What a `train` call did.
#[derive(Debug)]
pub enum Outcome {
    Trained(TrainSummary),
    /// `--resume` found the run finished and changed nothing.
    AlreadyFinished {
        dir: PathBuf,
        summary: TrainSummary,
    },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Trained(summary) => write!(f, "{summary}"),
            Outcome::AlreadyFinished { dir, summary } => write!(
                f,
                "{} holds a finished run; nothing to resume, nothing changed\n{summary}",
                dir.display()
            ),
        }
    }
}

/// The commit this binary was built from (`build.rs`), `-dirty` when its sources differed.
fn git_revision() -> Option<String> {
    option_env!("MLA_LAB_GIT_REVISION").map(str::to_string)
}

/// The model of `exp` as training starts: every weight drawn from its initialisation seed
/// ([`Experiment::init_seed`]), the same on every backend ([`crate::model::init`]).
pub fn initial_model(exp: &Experiment, device: &Device) -> Gpt {
    exp.model.init_drawn(exp.init_seed(), device)
}

pub fn run(
    exp_path: &Path,
    opts: &TrainOptions,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<Outcome> {
    let started = Instant::now();
    let (exp, text) = experiment_of_run(exp_path, opts.seed)?;
    let place = place(&exp, exp_path, opts)?;
    let mut open = match open_folder(&exp, &text, opts)? {
        Opening::Finished { dir, summary } => {
            return Ok(Outcome::AlreadyFinished { dir, summary });
        }
        Opening::Open(open) => open,
    };
    if let Some(source) = &exp.convert_from
        && open.resume_epoch.is_none()
        && !open.folder.start_weights().exists()
    {
        bail!(
            "{}: convert_from: {source:?}: this experiment fine-tunes a run of {source} converted \
             to it, and {} holds no converted weights, so it would train from drawn ones; \
             accepted: a folder made by converting a run of {source} to this file first",
            exp_path.display(),
            open.folder.dir.display()
        );
    }
    let data = prepare_data(&exp, &open.folder, opts)?;
    place.events(&exp).into_iter().for_each(&mut *on_event);
    let devices: Vec<Device> = place
        .devices
        .iter()
        .cloned()
        .map(Device::autodiff)
        .collect();
    let mut model = initial_model(&exp, &devices[0]);
    // A converted run starts from its converted weights ([`super::convert`]).
    let start = open.folder.start_weights();
    if open.resume_epoch.is_none() && start.exists() {
        model = load_weights(model, &start)?;
    }
    let counts = (model.param_count(), model.non_embedding_param_count());
    let val_unigram_entropy = tokens::unigram_entropy(&data.val);
    let fingerprint = data.manifest.source_fingerprint.clone();
    let loaders = Loaders::build(&exp, data, &place, open.resume_epoch, &devices[0])?;
    if let Some(epoch) = open.resume_epoch {
        model = checkpoint::verify(&open.folder.dir, epoch, model)?;
    }
    // Killed after its last checkpoint but before its summary: nothing left to train.
    let (trained, record) = if open.resume_epoch == Some(loaders.train.epochs()) {
        open.new_folder.keep();
        (model, RunRecord::default())
    } else {
        on_event(preflight_passes(
            &exp,
            exp_path,
            &model,
            &loaders.train,
            &place,
            &open,
        )?);
        train(&exp, model, loaders, devices, &place, &mut open, opts)?
    };
    save_weights(&trained, &open.folder)?;
    let seen = Seen {
        counts,
        started,
        val_unigram_entropy,
        fingerprint,
        record,
    };
    let summary = summary(&exp, &open, &place, seen);
    files::write_json(&open.folder.summary(), &summary)?;
    // A watcher's view only: a failure to write it does not fail the finished run.
    let _ = tensorboard::append_scalars(
        &open.folder.tensorboard(),
        summary.steps,
        &[(tensorboard::KV_BYTES, summary.kv_bytes_per_token_f32 as f64)],
    );
    Ok(Outcome::Trained(summary))
}

/// The experiment as the run records it, and its text: the file as written, or with the
/// training seed given.
fn experiment_of_run(exp_path: &Path, seed: Option<u64>) -> Result<(Experiment, String)> {
    let file = Experiment::load(exp_path)?;
    Ok(match seed {
        Some(seed) => {
            let exp = file.with_training_seed(seed);
            let text = exp.to_ron();
            (exp, text)
        }
        None => (file, std::fs::read_to_string(exp_path)?),
    })
}

/// The run's tokens, from the shared token cache (made on first use), and its tokenizer
/// copied into the folder.
fn prepare_data(exp: &Experiment, folder: &RunFolder, opts: &TrainOptions) -> Result<TokenData> {
    let data = tokens::prepare(
        &exp.data,
        exp.seed,
        &RunFolder::token_cache(&opts.artifacts),
    )?;
    if let TokenizerConfig::Bpe { .. } = exp.data.tokenizer {
        files::write(
            &folder.tokenizer(),
            &std::fs::read(data.dir.join("tokenizer.json"))?,
        )?;
    }
    Ok(data)
}

/// The training steps (from the one to resume at) and the validation windows.
struct Loaders {
    train: StepLoader,
    valid: Arc<dyn DataLoader<TokenBatch>>,
}

impl Loaders {
    fn build(
        exp: &Experiment,
        data: TokenData,
        place: &Placement,
        resume_epoch: Option<usize>,
        device: &Device,
    ) -> Result<Loaders> {
        let (t, context) = (&exp.train, exp.model.context);
        let train_windows = TokenWindows::train(Arc::new(data.train), context, exp.order_seed())?;
        let val_windows = TokenWindows::validation(Arc::new(data.val), context)?;
        let n_val =
            (t.eval_batches * t.batch_size).min(burn::data::dataset::Dataset::len(&val_windows));
        let valid = DataLoaderBuilder::new(TokenBatcher)
            .batch_size(t.batch_size)
            .set_device(device.clone())
            .build(PartialDataset::new(val_windows, 0, n_val));
        let train = StepLoader::new(
            train_windows,
            t.batch_size,
            t.eval_every,
            t.max_steps,
            resume_epoch.unwrap_or(0),
            device.clone(),
        )
        .with_micro_batch(place.micro);
        Ok(Loaders { train, valid })
    }
}

/// A pass of one row, timed; on a GPU where that was quick, the first whole micro-batch too,
/// so that a card that cannot hold it fails here (and a new folder goes). Host memory was
/// checked by the estimate, and a CPU's whole pass takes a minute or more. Returns the
/// projected training time.
fn preflight_passes(
    exp: &Experiment,
    exp_path: &Path,
    model: &Gpt,
    train: &StepLoader,
    place: &Placement,
    open: &Open,
) -> Result<TrainEvent> {
    let t = &exp.train;
    let first_step = open.resume_epoch.unwrap_or(0) * t.eval_every;
    let batch = train.batch(first_step).batch;
    let pass = |rows: usize| {
        let part = |x: &Tensor<2, Int>| x.clone().narrow(0, 0, rows); // [rows, context]
        let pass = TokenBatch {
            inputs: part(&batch.inputs),
            targets: part(&batch.targets),
        };
        preflight::time_pass(model, pass, &remedy(place))
            .with_context(|| format!("{}: {}", exp_path.display(), exp.name))
    };
    // The first pass carries one-off costs (allocation, first touch of the memory, a GPU's
    // kernel compilation): the quicker of two is the rate.
    let (micro, host) = (place.micro, place.selected.in_host_memory());
    let mut timed = (pass(1)?.min(pass(1)?), 1);
    if micro > 1 && !host && timed.0 < preflight::QUICK_PASS {
        timed = (pass(micro)?.min(pass(micro)?), micro);
    }
    let projection = Projection {
        pass: timed.0,
        timed_rows: timed.1,
        rows: micro,
        context: exp.model.context,
        passes_per_step: place.share / micro,
        serial_devices: if host { place.devices.len() } else { 1 },
        steps: t.max_steps - first_step,
    };
    Ok(TrainEvent::Projected {
        run: exp.name.clone(),
        text: projection.text(&place.selected.name),
        long: projection.is_long(),
    })
}

/// What records and shows the run ([`StepRenderer`]): lines or the dashboard, continuing the
/// metrics of an earlier invocation.
fn renderer(
    exp: &Experiment,
    folder: &RunFolder,
    place: &Placement,
    open: &Open,
    opts: &TrainOptions,
    interrupter: &Interrupter,
) -> StepRenderer {
    let t = &exp.train;
    let plan = RenderPlan {
        batch_size: t.batch_size,
        context: exp.model.context,
        steps_per_epoch: t.eval_every,
        max_steps: t.max_steps,
        log_every: t.log_every,
        devices: place.devices.len(),
    };
    let renderer = StepRenderer::new(
        plan,
        folder,
        opts.display == Display::Lines,
        interrupter.clone(),
    );
    let renderer = match &open.last_row {
        Some(last) => renderer.continuing(last),
        None => renderer,
    };
    match opts.display {
        Display::Dashboard => renderer.with_dashboard(Box::new(TuiMetricsRendererWrapper::new(
            interrupter.clone(),
            open.resume_epoch,
        ))),
        Display::Lines => renderer,
    }
}

/// burn-train's learner over the loaders, from the checkpoint to resume after; returns the
/// trained model, or an error in words (a failed allocation, a non-finite loss, an
/// interruption). A new run that fails in its first step leaves no folder.
fn train(
    exp: &Experiment,
    model: Gpt,
    loaders: Loaders,
    devices: Vec<Device>,
    place: &Placement,
    open: &mut Open,
    opts: &TrainOptions,
) -> Result<(Gpt, RunRecord)> {
    let (t, dir) = (&exp.train, open.folder.dir.clone());
    let interrupter = Interrupter::new();
    let renderer = renderer(exp, &open.folder, place, open, opts, &interrupter);
    let record = renderer.record.clone();
    let learner = Learner::new(model, optimizer(t), lr_schedule(t)?);
    let [ckpt_model, ckpt_optim, ckpt_sched] = AtomicCheckpointer::for_run(&dir);
    let epochs = loaders.train.epochs();
    let strategy = EveryNKeepLast::new(
        t.checkpoint_every / t.eval_every,
        epochs,
        t.keep_checkpoints,
        // Every epoch with a file left, so parts of half-rotated epochs go too.
        checkpoints::present(&dir)
            .into_iter()
            .filter(|&e| e <= open.resume_epoch.unwrap_or(0))
            .collect(),
    );
    let mut training = SupervisedTraining::new(&dir, Arc::new(loaders.train), loaders.valid)
        .num_epochs(epochs)
        .with_custom_checkpointers(ckpt_model, ckpt_optim, ckpt_sched)
        .with_checkpointing_strategy(strategy)
        .metric_train_numeric(LossMetric::new())
        .metric_valid_numeric(LossMetric::new())
        .metric_train_numeric(LearningRateMetric::new())
        .with_interrupter(interrupter)
        .with_application_logger(None)
        // burn-train's metric log stays in memory: the run's record is `metrics.csv` and `tb/`,
        // written by the renderer. Its default file logger writes `train/` and `valid/` from
        // threads that panic on a full disk (burn-train 0.22.1, `logger/file.rs`), while every
        // write of ours says what failed, and where.
        .with_metric_logger(InMemoryMetricLogger::new())
        .renderer(Box::new(renderer));
    if let Some(epoch) = open.resume_epoch {
        training = training.checkpoint(epoch);
    }
    let training = training.with_training_strategy(place.spread.execution(devices).into());
    // From here the folder holds the run's own files.
    open.new_folder.keep();
    // A backend reports a failed allocation by panicking; put it in words (burn's own report
    // of the panic is printed above it).
    let launched =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| training.launch(learner)));
    let r = record.lock().unwrap().clone();
    // A new run that failed in its first step holds nothing: it leaves no folder.
    let failed = match &launched {
        Ok(result) => result.error.is_some(),
        Err(_) => true,
    };
    if failed && open.created && r.step == 0 {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let in_words = |failure: &str| {
        // A full disk: say so, where, and that nothing is lost.
        if failure.contains("No space left on device") || failure.contains("os error 28") {
            let kept = checkpoints::latest_complete(&open.folder.dir).map_or(
                "no checkpoint was complete yet: free some space, then run it again".to_string(),
                |epoch| {
                    format!(
                        "the last complete checkpoint (step {}) is kept: free some space, then \
                         run the same command with --resume",
                        epoch * exp.train.eval_every
                    )
                },
            );
            return anyhow::anyhow!(
                "{}: the disk is full while writing {} (at step {}); {kept}",
                exp.name,
                open.folder.dir.display(),
                r.step
            );
        }
        // Past the last step, what fails is the epoch's end: the last validation and checkpoint
        // (a full disk, say), not a step.
        if r.step >= exp.train.max_steps {
            let last = failure.lines().rev().find(|l| !l.trim().is_empty());
            return anyhow::anyhow!(
                "{}: training failed after its last step ({}), while validating and writing its \
                 last checkpoint into {}: {}",
                exp.name,
                exp.train.max_steps,
                open.folder.checkpoints().display(),
                last.unwrap_or(failure).trim()
            );
        }
        let why = preflight::in_words(
            failure,
            r.step + 1,
            place.micro,
            exp.model.context,
            &remedy(place),
        );
        anyhow::anyhow!("{}: training failed: {why}", exp.name)
    };
    let result = match launched {
        Ok(result) => result,
        Err(payload) => return Err(in_words(&preflight::panic_message(payload.as_ref()))),
    };
    if let Some(why) = r.diverged {
        // Say what is really there: a run can diverge before its first checkpoint.
        let kept = match checkpoints::latest_complete(&open.folder.dir) {
            Some(epoch) => format!(
                "the last good checkpoint (step {}) is kept in {}",
                epoch * exp.train.eval_every,
                open.folder.checkpoints().display()
            ),
            None => "it diverged before its first checkpoint, so none is kept".to_string(),
        };
        bail!("{}: stopped: {why}; {kept}", exp.name);
    }
    if let Some(e) = &result.error {
        return Err(in_words(&format!("{e:#}")));
    }
    if let Some(stop) = &result.interrupted {
        return Err(FolderError::Interrupted {
            name: exp.name.clone(),
            step: r.step,
            why: stop.reason.as_deref().unwrap_or("stopped").to_string(),
        }
        .into());
    }
    Ok((result.model, r))
}

/// What [`run`] learnt on the way that the summary records.
struct Seen {
    /// Parameters, all and outside the embeddings.
    counts: (usize, usize),
    started: Instant,
    val_unigram_entropy: f64,
    fingerprint: String,
    /// What this invocation's renderer saw (nothing when it had nothing to train).
    record: RunRecord,
}

/// The run's summary: the whole run, earlier invocations included, as `metrics.csv` has it
/// (what this invocation saw where the file lacks it).
fn summary(exp: &Experiment, open: &Open, place: &Placement, seen: Seen) -> TrainSummary {
    let run = metrics::totals(&metrics::read(&open.folder.metrics()));
    let (t, r) = (&exp.train, &seen.record);
    let elapsed_before = open.last_row.as_ref().map_or(0.0, |row| row.elapsed_s);
    let final_val_loss = run.last_val_loss.or(r.last_val_loss);
    TrainSummary {
        experiment: exp.name.clone(),
        params: seen.counts.0,
        non_embedding_params: seen.counts.1,
        kv_bytes_per_token_f32: exp.model.kv_bytes_per_token(DType::F32),
        steps: t.max_steps,
        tokens_seen: t.max_steps * t.batch_size * exp.model.context,
        final_train_loss: run.last_train_loss.or(r.last_train_loss),
        final_val_loss,
        final_val_perplexity: final_val_loss.map(f64::exp),
        val_unigram_entropy: seen.val_unigram_entropy,
        tokens_per_s: run.tokens_per_s.or(r.tokens_per_s),
        wall_time_s: elapsed_before + seen.started.elapsed().as_secs_f64(),
        backend: place.selected.name.clone(),
        devices: place.devices.len(),
        strategy: Some(place.spread.name().to_string()),
        git_revision: git_revision(),
        data_fingerprint: Some(seen.fingerprint),
        initialisation: open.initialisation.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend;
    use crate::data::config::{DataConfig, DataSource};
    use crate::model::{AttentionConfig, GptConfig, LatentLayout, Positions};
    use burn::module::Module;
    use burn::store::ModuleSnapshot;

    fn tiny() -> Experiment {
        Experiment {
            name: "tiny".into(),
            seed: 5,
            model: GptConfig {
                vocab_size: 300,
                context: 16,
                d_model: 32,
                n_layers: 2,
                n_heads: 4,
                mlp_ratio: 2,
                positions: Positions::Rope(10_000.0),
                attention: AttentionConfig::mla(16, LatentLayout::Separate, 4),
                tie_embeddings: true,
            },
            data: DataConfig {
                source: DataSource::Synthetic {
                    count: 200,
                    seed: 3,
                },
                tokenizer: TokenizerConfig::Bpe { vocab_size: 300 },
                val_fraction: 0.1,
            },
            train: Default::default(),
            convert_from: None,
        }
    }

    fn weights(model: &Gpt) -> Vec<u8> {
        model
            .collect(None, None, false)
            .iter()
            .flat_map(|t| t.to_bytes().unwrap().to_vec())
            .collect()
    }

    #[test]
    fn training_seeds_share_the_data_and_differ_in_initial_weights() {
        let scratch = crate::data::Scratch::new("seeds");
        let device = crate::backend::test_device();
        let (one, two) = (tiny().with_training_seed(1), tiny().with_training_seed(2));
        let data = |e: &Experiment| tokens::prepare(&e.data, e.seed, &scratch.0).unwrap();
        let (d1, d2) = (data(&one), data(&two));
        assert_eq!(d1.dir, d2.dir, "one token cache");
        assert!(d2.reused);
        assert_eq!(d1.tokenizer.fingerprint(), d2.tokenizer.fingerprint());
        let val = |d: &tokens::TokenData| {
            let w = TokenWindows::validation(Arc::new(d.val.clone()), 16).unwrap();
            (0..burn::data::dataset::Dataset::len(&w))
                .map(|i| w.window(i).0)
                .collect::<Vec<_>>()
        };
        assert_eq!(val(&d1), val(&d2), "one validation set");
        // The weights come from mla-lab's own streams, not the device's shared generator: one
        // seed repeats them even with other tests drawing meanwhile.
        let w1 = weights(&initial_model(&one, &device));
        assert_eq!(w1, weights(&initial_model(&one, &device)));
        assert_ne!(w1, weights(&initial_model(&two, &device)));
    }

    #[test]
    fn initial_weights_are_bit_identical_on_every_backend() {
        let exp = tiny().with_training_seed(3);
        let backends = backend::compared_backends();
        if backends.len() == 1 {
            eprintln!(
                "initial_weights_are_bit_identical_on_every_backend: only {} here, so the \
                 comparison across backends is skipped (MLA_LAB_TEST_BACKEND names another)",
                backends[0].0
            );
        }
        let (cpu, device) = &backends[0];
        let want = weights(&initial_model(&exp, device));
        assert!(want.len() > 4 * 10_000, "{} bytes", want.len());
        for (name, device) in &backends[1..] {
            let got = weights(&initial_model(&exp, device));
            let same = got == want;
            assert!(same, "{name}: initial weights differ from {cpu}'s");
        }
        // Rows with one seed share the weights they have in common, and no others.
        let mut mha = exp.clone();
        mha.model.attention = AttentionConfig::mha(4);
        let named = |model: &Gpt| {
            let mut all = Vec::new();
            model.visit(&mut Named(Vec::new(), &mut all));
            all
        };
        let (a, b) = (
            named(&initial_model(&exp, device)),
            named(&initial_model(&mha, device)),
        );
        let shared = |path: &str| {
            let find = |all: &[(String, Vec<u8>)]| all.iter().find(|(p, _)| p == path).cloned();
            find(&a).zip(find(&b)).map(|(x, y)| x.1 == y.1)
        };
        assert_eq!(shared("wte.weight"), Some(true));
        assert_eq!(shared("blocks.1.fc.weight"), Some(true));
        let attention: Vec<&String> = a
            .iter()
            .map(|(p, _)| p)
            .filter(|p| p.contains("attn"))
            .collect();
        assert!(!attention.is_empty());
        assert!(
            attention.iter().all(|p| shared(p) != Some(true)),
            "{attention:?}"
        );
    }

    /// The "+0.3%" pilot's pairing (docs/results-tiny/pilot-rule.md): seed s of the two rows it
    /// compares, read from their files, sees the same windows in the same order and starts from
    /// the same weights on every path both models have outside attention.
    #[test]
    fn the_pilots_rows_of_one_seed_see_the_same_batches_and_share_their_weights() {
        let read = |file: &str| {
            let path = format!("{}/experiments/tiny/{file}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap();
            Experiment::parse(&text, &path)
                .unwrap()
                .with_training_seed(4)
        };
        let (mha, mla) = (read("mha_rope.ron"), read("mla_rope_half.ron"));
        assert_eq!(
            (mha.order_seed(), mha.model.context),
            (mla.order_seed(), mla.model.context)
        );
        let tokens = Arc::new(
            (0..5000u32)
                .map(|i| i.wrapping_mul(2654435761) % 97)
                .collect(),
        );
        let order = |e: &Experiment| {
            let w = TokenWindows::train(Arc::clone(&tokens), e.model.context, e.order_seed());
            let w = w.unwrap();
            (0..burn::data::dataset::Dataset::len(&w))
                .map(|i| w.window(i).0)
                .collect::<Vec<_>>()
        };
        let batches = order(&mha);
        assert!(batches.len() > 10);
        assert_eq!(batches, order(&mla), "the same windows in the same order");
        assert_ne!(batches, order(&mha.with_training_seed(5)), "another seed");

        let device = crate::backend::test_device();
        let named = |e: &Experiment| {
            let mut all = Vec::new();
            initial_model(e, &device).visit(&mut Named(Vec::new(), &mut all));
            all
        };
        let (a, b) = (named(&mha), named(&mla));
        let outside_attention: Vec<&(String, Vec<u8>)> =
            a.iter().filter(|(p, _)| !p.contains("attn")).collect();
        // The embeddings, every block's norms and MLP, the final norm (the head is tied).
        assert!(
            outside_attention.len() >= 2 + 4 * 6,
            "{}",
            outside_attention.len()
        );
        for (path, weight) in outside_attention {
            let other = b.iter().find(|(p, _)| p == path);
            assert!(other.is_some(), "{path} is missing from MLA+RoPE");
            assert!(
                &other.unwrap().1 == weight,
                "{path} differs between the rows"
            );
        }
    }

    /// Every float weight with its path.
    struct Named<'a>(Vec<String>, &'a mut Vec<(String, Vec<u8>)>);

    impl burn::module::ModuleVisitor for Named<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.into());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            let bytes = param.val().into_data().into_bytes().to_vec();
            self.1.push((self.0.join("."), bytes));
        }
    }
}
