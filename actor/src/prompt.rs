//! The pieces of an episode's prompt in ChatML, each tokenised on its own as a segment, so the
//! learner can leave tip blocks out without cutting through a BPE merge (ALGORITHM.md §3).
//!
//! ```text
//! system   <|im_start|>system\n{instructions + task}<|im_end|>\n
//! obs      <|im_start|>user\n{observation}<|im_end|>\n          (later turns start with \n)
//! tip      <|im_start|>user\n<tip>Here are some memories …\n{tips}</tip><|im_end|>\n
//! obs      <|im_start|>assistant\n
//! action   {sampled tokens}<|im_end|>
//! ```

use policy::ChatTokenizer;
use policy::tokenizer::chatml;
use trajectory::{Segment, SegmentKind};

use crate::error::ActorError;

/// What opens every tip block (the reference's wording).
pub const TIP_HEADER: &str = "Here are some memories you collected in your previous exploration:";

/// The system turn: how to act, and the task.
pub fn system(task: &str) -> String {
    chatml::turn(
        "system",
        &format!(
            "You are an agent in a text world. Reply with one action, such as `look around`, \
             `go to kitchen`, `open door to hallway`, `take red wire` or `focus on cat`.\n{task}"
        ),
    )
}

/// A user turn with an observation; turns after the first begin a new line after the
/// previous action's end token.
pub fn observation(text: &str, first: bool) -> String {
    let turn = chatml::turn("user", text.trim());
    if first { turn } else { format!("\n{turn}") }
}

/// A user turn with retrieved tips, best first.
pub fn tips(tips: &[String]) -> String {
    chatml::turn(
        "user",
        &format!("<tip>{TIP_HEADER}\n{}</tip>", tips.join("\n")),
    )
}

/// Tokenises `text` as one segment of `kind`.
pub fn segment(
    tokenizer: &ChatTokenizer,
    kind: SegmentKind,
    text: &str,
) -> Result<Segment, ActorError> {
    Ok(Segment {
        kind,
        tokens: tokenizer.encode(text)?,
        logprobs: Vec::new(),
    })
}

/// The reflection turn the `policy` tip writer answers after an episode (ALGORITHM.md §3),
/// followed by the assistant prompt.
pub fn reflection(final_score: f32, success: bool) -> String {
    let outcome = if success { "solved" } else { "not solved" };
    format!(
        "\n{}{}",
        chatml::turn(
            "user",
            &format!(
                "The episode is over: final score {final_score}/100, {outcome}. In one sentence \
                 under 100 words, write a tip for your next attempt at this task: what you tried, \
                 what you learned, and how far you were from done."
            ),
        ),
        chatml::assistant_prompt()
    )
}

/// The assistant prompt that precedes each sampled action (kept in every mode's sequence).
pub fn assistant_prompt() -> String {
    chatml::assistant_prompt()
}

/// The segments of one turn before its action: the observation, the tips (when there are
/// any) and the assistant prompt. Actors and demonstrations build turns only through this.
pub fn turn(
    tokenizer: &ChatTokenizer,
    observation_text: &str,
    first: bool,
    tip_texts: &[String],
) -> Result<Vec<Segment>, ActorError> {
    let mut turn = vec![segment(
        tokenizer,
        SegmentKind::Observation,
        &observation(observation_text, first),
    )?];
    if !tip_texts.is_empty() {
        turn.push(segment(tokenizer, SegmentKind::Tip, &tips(tip_texts))?);
    }
    turn.push(segment(
        tokenizer,
        SegmentKind::Observation,
        &assistant_prompt(),
    )?);
    Ok(turn)
}
