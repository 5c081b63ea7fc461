//! Tips (ALGORITHM.md §3), under 100 words, by one of two writers: `summary`, a
//! deterministic sentence about what an episode tried, what changed the score and how far it
//! got, for small models that cannot yet write tips themselves; or `policy`, the policy's own
//! answer to a reflection turn appended to the episode it just played (its KV cache is still
//! in the sampling session), tidied by [`one_line`].

use policy::Policy;
use policy::sample::{SamplingParams, Session};
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::error::ActorError;
use crate::prompt;
use crate::transcript::Transcript;

/// Who writes the tip at the end of a training episode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TipWriter {
    /// A deterministic summary of the trajectory, for small models that cannot yet write.
    #[default]
    Summary,
    /// The current policy, given the whole episode and a reflection instruction.
    Policy,
}

/// How tips reach the prompt: who writes them, and whether every turn repeats the tips
/// retrieved for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tips {
    /// Who writes the tip at the end of a training episode.
    pub writer: TipWriter,
    /// Whether a turn shows its tips even when they are the ones the last tip block showed
    /// (ALGORITHM.md §3 shows every retrieval). Off, a repeat is left out: the earlier block
    /// stays in the prompt above, and a small context is not filled with copies.
    pub repeat: bool,
}

impl Tips {
    /// What a turn shows of the tips `retrieved` for it, given the last tip block shown.
    pub fn shown(&self, retrieved: Vec<String>, last_shown: &mut Vec<String>) -> Vec<String> {
        if retrieved.is_empty() || (!self.repeat && retrieved == *last_shown) {
            return Vec::new();
        }
        last_shown.clone_from(&retrieved);
        retrieved
    }
}

/// Most tokens of a tip written by the policy.
const TIP_TOKENS: usize = 96;

/// The tip of each episode: the `summary` writer's, or the policy's answer to a reflection
/// turn appended to the episode in `session`. An episode whose context has no room, or whose
/// answer is empty, gets the summary.
pub(crate) fn write(
    writer: TipWriter,
    policy: &Policy,
    session: &mut Session<'_>,
    transcripts: &[Transcript],
    params: &SamplingParams,
    rng: &mut StdRng,
) -> Result<Vec<String>, ActorError> {
    let summaries: Vec<String> = transcripts.iter().map(Transcript::summary).collect();
    if writer == TipWriter::Summary {
        return Ok(summaries);
    }
    let tok = &policy.tokenizer;
    let context = policy.model.config().max_position_embeddings;
    let mut chunks = Vec::with_capacity(transcripts.len());
    for (r, t) in transcripts.iter().enumerate() {
        let chunk = tok.encode(&prompt::reflection(t.score, t.success()))?;
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
    let mut tips = Vec::with_capacity(transcripts.len());
    for ((generation, summary), active) in generations.into_iter().zip(summaries).zip(active) {
        let end = generation.tokens.len() - usize::from(generation.stopped);
        let text = match active {
            true => one_line(&tok.decode(&generation.tokens[..end])?),
            false => String::new(),
        };
        tips.push(if text.is_empty() { summary } else { text });
    }
    Ok(tips)
}

/// One step of a finished episode, as the writer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// The action sent to the environment.
    pub action: String,
    /// Extrinsic reward of the step.
    pub reward: f32,
    /// The observation after it.
    pub observation: String,
}

/// Most words in a tip.
const MAX_TIP_WORDS: usize = 100;

/// `text` on one line (control characters and runs of whitespace become one space), cut to
/// at most 100 words.
pub fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .take(MAX_TIP_WORDS)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A one-sentence summary of an episode.
pub fn summary(steps: &[StepRecord], final_score: f32, success: bool) -> String {
    let mut rooms: Vec<&str> = Vec::new();
    for s in steps {
        let room = s
            .observation
            .strip_prefix("You move to the ")
            .and_then(|r| r.strip_suffix('.'));
        if let Some(room) = room.filter(|r| !rooms.contains(r)) {
            rooms.push(room);
        }
    }
    let scoring: Vec<String> = steps
        .iter()
        .filter(|s| s.reward != 0.0)
        .take(6)
        .map(|s| format!("{} ({:+})", s.action, s.reward))
        .collect();
    let mut text = format!("In {} steps", steps.len());
    if !rooms.is_empty() {
        text.push_str(&format!(
            " I visited {}",
            rooms.iter().take(6).copied().collect::<Vec<_>>().join(", ")
        ));
    }
    if scoring.is_empty() {
        text.push_str("; no action changed the score");
    } else {
        text.push_str(&format!("; the score changed on {}", scoring.join(", ")));
    }
    let outcome = if success { "solved" } else { "not solved" };
    text.push_str(&format!("; final score {final_score}/100, {outcome}."));
    text
}

/// The memory entry of step `action`: `tip; the action at that step was …; final score G/100`.
pub fn entry_text(tip: &str, action: &str, final_score: f32) -> String {
    format!("{tip}; the action at that step was {action}; final score {final_score}/100")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_is_shown_only_when_tips_repeat() {
        let tips = |list: &[&str]| list.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        for (repeat, shown) in [(true, [1, 1, 1, 0, 1]), (false, [1, 0, 1, 0, 1])] {
            let options = Tips {
                writer: TipWriter::Summary,
                repeat,
            };
            let mut last = Vec::new();
            let got: Vec<usize> = [
                tips(&["a"]),
                tips(&["a"]),
                tips(&["b"]),
                tips(&[]),
                tips(&["a"]),
            ]
            .into_iter()
            .map(|retrieved| options.shown(retrieved, &mut last).len())
            .collect();
            assert_eq!(got, shown, "repeat = {repeat}");
        }
    }

    #[test]
    fn summarises_rooms_scoring_actions_and_outcome() {
        let step = |action: &str, reward, observation: &str| StepRecord {
            action: action.into(),
            reward,
            observation: observation.into(),
        };
        let steps = [
            step("go to hallway", 0.0, "You move to the hallway."),
            step("go to bedroom", 10.0, "You move to the bedroom."),
            step(
                "focus on toy cat",
                -110.0,
                "You focus on the toy cat. That is not …",
            ),
        ];
        assert_eq!(
            summary(&steps, -100.0, false),
            "In 3 steps I visited hallway, bedroom; the score changed on go to bedroom (+10), \
             focus on toy cat (-110); final score -100/100, not solved."
        );
        assert_eq!(
            entry_text("a tip", "go to bedroom", 10.0),
            "a tip; the action at that step was go to bedroom; final score 10/100"
        );
    }
}
