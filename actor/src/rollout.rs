//! Plays one group: N episodes of one task variation in one mode, batched through one policy
//! sampling session (each turn prefills only its new tokens; the KV cache is kept across
//! turns). In memory modes every step retrieves the slot's tips for the episode so far and
//! inserts them as their own segment; with a memory service every visited state earns the
//! novelty reward; at the end each episode's tip is written and its entries stored.

use envs::{EnvClient, ResetSpec};
use policy::Policy;
use policy::sample::{Generation, SamplingParams, Session};
use rand::SeedableRng;
use rand::rngs::StdRng;
use trajectory::{LeaseRef, Mode, Trajectory};

use crate::error::ActorError;
use crate::memory::MemoryClient;
use crate::timing::{Timing, timed, timed_blocking};
use crate::tip::{self, Tips};
use crate::transcript::Transcript;

/// How to sample a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// Softmax temperature (1.0 in training, 0.4 in evaluation).
    pub temperature: f64,
    /// Nucleus mass; 1 disables it.
    pub top_p: f64,
    /// Most tokens per action.
    pub max_action_tokens: usize,
    /// Most steps per episode.
    pub max_steps: u32,
    /// Most tokens in a prompt; an episode that would outgrow it ends.
    pub max_prompt_tokens: usize,
}

/// A group to play.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    /// The lease it answers: ids, environment, task, variation and memory slot (ids empty
    /// outside training).
    pub lease: LeaseRef,
    /// Mode of the whole group.
    pub mode: Mode,
    /// Episodes in the group.
    pub group_size: usize,
    /// Episode i uses seed + i (environment and sampling).
    pub seed: u64,
    /// How to sample.
    pub sampling: Sampling,
    /// Policy version that samples (stored with memory entries and trajectories).
    pub policy_version: u64,
    /// Whether to write tips and store entries (training episodes do; evaluation does not).
    pub write_tips: bool,
    /// Who writes the tips, and whether turns repeat them.
    pub tips: Tips,
}

/// Plays the group and returns its episodes in index order (all of them, or an error: never
/// part of one), with the group's time split. Needs a multi-threaded tokio runtime: sampling
/// runs in `block_in_place`, so the services on the same runtime keep answering while the
/// policy computes.
#[tracing::instrument(name = "group", skip_all, fields(task = %spec.lease.task, variation = spec.lease.variation, mode = ?spec.mode))]
pub async fn play_group(
    policy: &Policy,
    env: &mut EnvClient,
    mut memory: Option<&mut MemoryClient>,
    spec: &GroupSpec,
) -> Result<(Vec<Trajectory>, Timing), ActorError> {
    let mut timing = Timing::default();
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let tok = &policy.tokenizer;
    let n = spec.group_size;
    let slot = spec.lease.slot.as_str();
    let memory_mode = spec.mode != Mode::Plain;

    let mut transcripts = Vec::with_capacity(n);
    let mut chunks = Vec::with_capacity(n);
    for i in 0..n {
        let reset = ResetSpec {
            task: spec.lease.task.clone(),
            variation: spec.lease.variation,
            seed: spec.seed + i as u64,
            ..ResetSpec::default()
        };
        let started = timed(&mut timing.environment, env.reset(&reset)).await?;
        let mut transcript = Transcript::start(
            tok,
            started.session,
            started.observation,
            started.score,
            spec.tips,
        )?;
        let turn_memory = memory.as_deref_mut().filter(|_| memory_mode);
        let chunk = transcript
            .next_turn(tok, turn_memory, slot, true, &mut timing)
            .await?;
        chunks.push([transcript.segments[0].tokens.clone(), chunk].concat());
        transcripts.push(transcript);
    }

    let params = SamplingParams {
        temperature: spec.sampling.temperature,
        top_p: spec.sampling.top_p,
        max_tokens: spec.sampling.max_action_tokens,
        stop_tokens: vec![tok.im_end()],
    };
    let context = policy.model.config().max_position_embeddings;
    let budget = spec.sampling.max_prompt_tokens.min(context);
    let mut decoder = Session::new(&policy.model, n);
    loop {
        let generations: Vec<Generation> = timed_blocking(&mut timing.sampling, || {
            tokio::task::block_in_place(|| {
                decoder.extend(&chunks)?;
                let active: Vec<bool> = transcripts.iter().map(|t| !t.done).collect();
                decoder.generate(&params, &active, &mut rng)
            })
        })?;
        for c in &mut chunks {
            c.clear();
        }
        // Every active row acts; then the states they reached are counted in one call.
        let mut stepped = Vec::with_capacity(n);
        for (r, (transcript, generation)) in transcripts.iter_mut().zip(generations).enumerate() {
            if transcript.done {
                continue;
            }
            timing.tokens += generation.tokens.len();
            let action = transcript.act(tok, generation)?;
            let step = env.step(&transcript.env_session, &action);
            let outcome = timed(&mut timing.environment, step).await?;
            stepped.push((r, action, outcome));
        }
        let novelty = match memory.as_deref_mut() {
            Some(memory) => {
                let states: Vec<&str> = stepped
                    .iter()
                    .map(|(_, _, o)| o.observation.text.as_str())
                    .collect();
                timed(&mut timing.memory, memory.novelty(slot, &states)).await?
            }
            None => vec![0.0; stepped.len()],
        };
        for ((r, action, outcome), novelty) in stepped.into_iter().zip(novelty) {
            let transcript = &mut transcripts[r];
            transcript.record_step(action, outcome, novelty, spec.sampling.max_steps);
            if transcript.done {
                continue;
            }
            let turn_memory = memory.as_deref_mut().filter(|_| memory_mode);
            let chunk = transcript
                .next_turn(tok, turn_memory, slot, false, &mut timing)
                .await?;
            if decoder.lengths()[r] + chunk.len() + params.max_tokens > budget {
                // The prompt would outgrow its budget: the episode ends here.
                transcript.done = true;
                transcript.take_back_turn();
            } else {
                chunks[r] = chunk;
            }
        }
        if transcripts.iter().all(|t| t.done) {
            break;
        }
    }

    let tips = match spec.write_tips {
        false => vec![String::new(); n],
        true => timed_blocking(&mut timing.sampling, || {
            tokio::task::block_in_place(|| {
                let writer = spec.tips.writer;
                tip::write(
                    writer,
                    policy,
                    &mut decoder,
                    &transcripts,
                    &params,
                    &mut rng,
                )
            })
        })?,
    };
    let mut trajectories = Vec::with_capacity(n);
    for (index, (transcript, tip)) in transcripts.into_iter().zip(tips).enumerate() {
        env.close(&transcript.env_session).await.ok();
        if let (Some(memory), true) = (memory.as_deref_mut(), spec.write_tips) {
            let entries = transcript.entries(&tip);
            let insert = memory.insert(slot, &entries, spec.policy_version);
            timed(&mut timing.memory, insert).await?;
        }
        trajectories.push(transcript.into_trajectory(spec, index, tip));
    }
    Ok((trajectories, timing))
}
