//! Plays one group: N episodes of one task variation in one mode, batched through one policy
//! session (each turn prefills only its new tokens; the KV cache is kept across turns). In
//! memory modes every step retrieves the slot's tips for the episode so far and inserts them
//! as their own segment; with a memory service every visited state earns the novelty reward;
//! at the end each episode's tip is written and its entries stored.

use std::time::{Duration, Instant};

use envs::correct::nearest_action;
use envs::{EnvClient, Observation, ResetSpec};
use learner::config::TipWriter;
use learner::{Episode, Mode, Segment, SegmentKind};
use policy::Policy;
use policy::sample::{Generation, SamplingParams, Session};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::error::ActorError;
use crate::memory::{Entry, MemoryClient};
use crate::prompt;
use crate::tip::{self, StepRecord};

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
    /// Task name.
    pub task: String,
    /// Variation id.
    pub variation: u32,
    /// Memory slot of the task variation.
    pub slot: String,
    /// Mode of the whole group.
    pub mode: Mode,
    /// Episodes in the group.
    pub group_size: usize,
    /// Episode i uses seed + i (environment and sampling).
    pub seed: u64,
    /// How to sample.
    pub sampling: Sampling,
    /// Policy version that samples (stored with memory entries).
    pub policy_version: u64,
    /// Whether to write tips and store entries (training episodes do; evaluation does not).
    pub write_tips: bool,
    /// Who writes the tips.
    pub tip_writer: TipWriter,
}

/// A played episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Played {
    /// What the learner trains on.
    pub episode: Episode,
    /// Final environment score.
    pub final_score: f32,
    /// Whether the task was solved.
    pub success: bool,
    /// The tip written at the end (empty when tips are not written).
    pub tip: String,
    /// Steps taken.
    pub steps: usize,
    /// Tips retrieved that were shown (memory hit count).
    pub tips_shown: usize,
    /// Memory retrievals made.
    pub retrievals: usize,
}

/// Time spent, for the time split metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timing {
    /// Sampling actions (forward passes).
    pub sampling: Duration,
    /// Environment steps and resets.
    pub environment: Duration,
    /// Memory service calls.
    pub memory: Duration,
    /// Tokens sampled.
    pub tokens: usize,
}

/// One episode in progress.
struct Row {
    session: String,
    observation: Observation,
    segments: Vec<Segment>,
    steps: Vec<StepRecord>,
    intrinsic: Vec<f32>,
    text: String,
    score: f32,
    success: bool,
    done: bool,
    tips_shown: usize,
    retrievals: usize,
}

/// Plays the group and returns its episodes (all of them, or an error: never part of one).
/// Needs a multi-threaded tokio runtime: sampling runs in `block_in_place`, so the services
/// on the same runtime keep answering while the policy computes.
#[tracing::instrument(name = "group", skip_all, fields(task = %spec.task, variation = spec.variation, mode = ?spec.mode))]
pub async fn play_group(
    policy: &Policy,
    env: &mut EnvClient,
    mut memory: Option<&mut MemoryClient>,
    spec: &GroupSpec,
) -> Result<(Vec<Played>, Timing), ActorError> {
    let mut timing = Timing::default();
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let tok = &policy.tokenizer;
    let n = spec.group_size;
    let memory_mode = spec.mode != Mode::Plain;

    let mut rows = Vec::with_capacity(n);
    let mut chunks = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let reset = ResetSpec {
            task: spec.task.clone(),
            variation: spec.variation,
            seed: spec.seed + i as u64,
            ..ResetSpec::default()
        };
        let started_episode = env.reset(&reset).await?;
        timing.environment += started.elapsed();
        let observation = started_episode.observation;
        let system = prompt::segment(
            tok,
            SegmentKind::System,
            &prompt::system(&observation.task_description),
        )?;
        let mut row = Row {
            session: started_episode.session,
            text: format!(
                "{}\n{}",
                observation.task_description,
                observation.text.trim()
            ),
            observation,
            segments: vec![system],
            steps: Vec::new(),
            intrinsic: Vec::new(),
            score: started_episode.score,
            success: false,
            done: false,
            tips_shown: 0,
            retrievals: 0,
        };
        let chunk = next_turn(
            &mut row,
            tok,
            memory.as_deref_mut().filter(|_| memory_mode),
            &spec.slot,
            true,
            &mut timing,
        )
        .await?;
        chunks.push([row.segments[0].tokens.clone(), chunk].concat());
        rows.push(row);
    }

    let params = SamplingParams {
        temperature: spec.sampling.temperature,
        top_p: spec.sampling.top_p,
        max_tokens: spec.sampling.max_action_tokens,
        stop_tokens: vec![tok.im_end()],
    };
    let context = policy.model.config().max_position_embeddings;
    let budget = spec.sampling.max_prompt_tokens.min(context);
    let mut session = Session::new(&policy.model, n);
    loop {
        let started = Instant::now();
        let generations: Vec<Generation> = tokio::task::block_in_place(|| {
            session.extend(&chunks)?;
            let active: Vec<bool> = rows.iter().map(|r| !r.done).collect();
            session.generate(&params, &active, &mut rng)
        })?;
        timing.sampling += started.elapsed();
        for c in &mut chunks {
            c.clear();
        }
        for (r, (row, generation)) in rows.iter_mut().zip(generations).enumerate() {
            if row.done {
                continue;
            }
            timing.tokens += generation.tokens.len();
            let action = act(row, tok, generation)?;
            let started = Instant::now();
            let outcome = env.step(&row.session, &action).await?;
            timing.environment += started.elapsed();
            let reward = match memory.as_deref_mut() {
                Some(memory) => {
                    let started = Instant::now();
                    let reward = memory
                        .novelty(&spec.slot, &outcome.observation.text)
                        .await?;
                    timing.memory += started.elapsed();
                    reward
                }
                None => 0.0,
            };
            row.intrinsic.push(reward);
            row.steps.push(StepRecord {
                action: action.clone(),
                reward: outcome.reward,
                observation: outcome.observation.text.clone(),
            });
            row.text.push_str(&format!(
                "\n> {action}\n{}",
                outcome.observation.text.trim()
            ));
            row.score = outcome.score;
            row.success = outcome.success;
            row.observation = outcome.observation;
            row.done = outcome.done || row.steps.len() as u32 >= spec.sampling.max_steps;
            if row.done {
                continue;
            }
            let chunk = next_turn(
                row,
                tok,
                memory.as_deref_mut().filter(|_| memory_mode),
                &spec.slot,
                false,
                &mut timing,
            )
            .await?;
            if session.lengths()[r] + chunk.len() + params.max_tokens > budget {
                row.done = true; // the prompt would outgrow its budget: the episode ends here
                row.segments
                    .truncate(row.segments.len() - segments_in_turn(row));
            } else {
                chunks[r] = chunk;
            }
        }
        if rows.iter().all(|r| r.done) {
            break;
        }
    }

    let started = Instant::now();
    let tips = tokio::task::block_in_place(|| {
        write_tips(policy, &mut session, &rows, spec, &params, &mut rng)
    })?;
    timing.sampling += started.elapsed();
    let mut played = Vec::with_capacity(n);
    for (row, tip) in rows.into_iter().zip(tips) {
        env.close(&row.session).await.ok();
        if let (Some(memory), true) = (memory.as_deref_mut(), spec.write_tips) {
            let entries: Vec<Entry> = row
                .steps
                .iter()
                .map(|s| Entry {
                    text: tip::entry_text(&tip, &s.action, row.score),
                    key_text: head(&row.text, EMBED_TEXT_BYTES).to_string(),
                    score: row.score,
                })
                .collect();
            let started = Instant::now();
            memory
                .insert(&spec.slot, &entries, spec.policy_version)
                .await?;
            timing.memory += started.elapsed();
        }
        let extrinsic: Vec<f32> = row.steps.iter().map(|s| s.reward).collect();
        played.push(Played {
            episode: Episode {
                mode: spec.mode,
                segments: row.segments,
                extrinsic,
                intrinsic: row.intrinsic,
            },
            final_score: row.score,
            success: row.success,
            tip,
            steps: row.steps.len(),
            tips_shown: row.tips_shown,
            retrievals: row.retrievals,
        });
    }
    Ok((played, timing))
}

/// Most tokens of a tip written by the policy.
const TIP_TOKENS: usize = 96;

/// The tip of each episode: none when tips are not written, the `summary` writer's, or the
/// policy's answer to a reflection turn appended to the episode it just played (its KV cache
/// is still in the session). An episode whose context has no room, or whose answer is empty,
/// gets the summary.
fn write_tips(
    policy: &Policy,
    session: &mut Session<'_>,
    rows: &[Row],
    spec: &GroupSpec,
    params: &SamplingParams,
    rng: &mut StdRng,
) -> Result<Vec<String>, ActorError> {
    if !spec.write_tips {
        return Ok(vec![String::new(); rows.len()]);
    }
    let summaries: Vec<String> = rows
        .iter()
        .map(|r| tip::summary(&r.steps, r.score, r.success))
        .collect();
    if spec.tip_writer == TipWriter::Summary {
        return Ok(summaries);
    }
    let tok = &policy.tokenizer;
    let context = policy.model.config().max_position_embeddings;
    let mut chunks = Vec::with_capacity(rows.len());
    for (r, row) in rows.iter().enumerate() {
        let chunk = tok.encode(&prompt::reflection(row.score, row.success))?;
        let fits = session.lengths()[r] + chunk.len() + TIP_TOKENS <= context;
        chunks.push(if fits { chunk } else { Vec::new() });
    }
    let active: Vec<bool> = chunks.iter().map(|c| !c.is_empty()).collect();
    if !active.contains(&true) {
        return Ok(summaries);
    }
    session.extend(&chunks)?;
    let params = SamplingParams {
        max_tokens: TIP_TOKENS,
        ..params.clone()
    };
    let generations = session.generate(&params, &active, rng)?;
    let mut tips = Vec::with_capacity(rows.len());
    for ((generation, summary), active) in generations.into_iter().zip(summaries).zip(active) {
        let end = generation.tokens.len() - usize::from(generation.stopped);
        let text = match active {
            true => tip::one_line(&tok.decode(&generation.tokens[..end])?),
            false => String::new(),
        };
        tips.push(if text.is_empty() { summary } else { text });
    }
    Ok(tips)
}

/// Records a sampled action segment and turns its text into an environment action (the
/// nearest valid action, or the raw text when nothing is close).
fn act(
    row: &mut Row,
    tok: &policy::ChatTokenizer,
    generation: Generation,
) -> Result<String, ActorError> {
    let end = if generation.stopped {
        generation.tokens.len() - 1
    } else {
        generation.tokens.len()
    };
    // One line of plain words: what the environment accepts as an action.
    let decoded = tok.decode(&generation.tokens[..end])?;
    let words: Vec<&str> = decoded
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect();
    let text = words.join(" ");
    let text = text.as_str();
    let action = nearest_action(text, &row.observation.valid_actions)
        .map(|(a, _)| a.to_string())
        .unwrap_or_else(|| {
            if text.is_empty() {
                "look around".into()
            } else {
                text.chars().take(200).collect()
            }
        });
    row.segments.push(Segment {
        kind: SegmentKind::Action,
        tokens: generation.tokens,
        logprobs: generation.logprobs,
    });
    Ok(action)
}

/// Appends the segments of the next turn (observation, tips in memory modes, assistant
/// prompt) to the row and returns their tokens.
async fn next_turn(
    row: &mut Row,
    tok: &policy::ChatTokenizer,
    memory: Option<&mut MemoryClient>,
    slot: &str,
    first: bool,
    timing: &mut Timing,
) -> Result<Vec<u32>, ActorError> {
    let mut turn = vec![prompt::segment(
        tok,
        SegmentKind::Observation,
        &prompt::observation(&row.observation.text, first),
    )?];
    if let Some(memory) = memory {
        let started = Instant::now();
        let tips = memory
            .retrieve(slot, head(&row.text, EMBED_TEXT_BYTES))
            .await?;
        timing.memory += started.elapsed();
        row.retrievals += 1;
        if !tips.is_empty() {
            row.tips_shown += tips.len();
            turn.push(prompt::segment(
                tok,
                SegmentKind::Tip,
                &prompt::tips(&tips),
            )?);
        }
    }
    turn.push(prompt::segment(
        tok,
        SegmentKind::Observation,
        &prompt::assistant_prompt(),
    )?);
    let tokens = turn.iter().flat_map(|s| s.tokens.iter().copied()).collect();
    row.segments.extend(turn);
    Ok(tokens)
}

/// Segments appended by the last `next_turn` (to take back a turn that does not fit).
fn segments_in_turn(row: &Row) -> usize {
    row.segments
        .iter()
        .rev()
        .take_while(|s| s.kind != SegmentKind::Action)
        .count()
}

/// Most bytes of episode text sent to be embedded. all-MiniLM-L6-v2 reads the first 256
/// word pieces of a text (about 1 KB), so the query and the key are, as in the reference, the
/// embedding of the episode's beginning — task and first observations — and the rest would
/// only cost tokenisation.
const EMBED_TEXT_BYTES: usize = 4 * 1024;

/// The first `max` bytes of `text`, at a character boundary.
fn head(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
