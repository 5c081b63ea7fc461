//! Demonstrations for supervised warm starts (`empo2 sft`): what an agent saw, the tips it
//! was shown and the action it took, turn by turn — turned into exactly the episode an actor
//! sends when it samples those actions itself (the same segments, tokenised the same way), so
//! that a warm start and RL train on one sequence layout.

use policy::ChatTokenizer;
use serde::{Deserialize, Serialize};
use trajectory::{Episode, Mode, Segment, SegmentKind};

use crate::error::ActorError;
use crate::prompt;

/// One demonstrated episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Demonstration {
    /// The task text (what the system turn tells the agent).
    pub task_description: String,
    /// The turns, in order.
    pub turns: Vec<Turn>,
}

/// One turn of a demonstration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    /// What the environment showed before the action.
    pub observation: String,
    /// Tips shown in this turn, in their own segment (a model learns to read them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tips: Vec<String>,
    /// The action taken.
    pub action: String,
}

impl Demonstration {
    /// The episode an actor would send had it sampled these actions: system segment, then per
    /// turn the observation, tips and assistant prompt, and the action followed by the end
    /// token. Mode `mem_on` when any turn shows tips (they stay in the sequence), else
    /// `plain`; rewards and behaviour log-probs are zero (supervised training reads neither).
    pub fn episode(&self, tokenizer: &ChatTokenizer) -> Result<Episode, ActorError> {
        let bad = |m: String| Err(ActorError::Demonstration(m));
        if self.task_description.trim().is_empty() {
            return bad("the task description is empty".into());
        }
        if self.turns.is_empty() {
            return bad("it has no turns".into());
        }
        let mut segments = vec![prompt::segment(
            tokenizer,
            SegmentKind::System,
            &prompt::system(&self.task_description),
        )?];
        for (i, turn) in self.turns.iter().enumerate() {
            if turn.action.trim().is_empty() {
                return bad(format!("turn {i} has an empty action"));
            }
            segments.extend(prompt::turn(
                tokenizer,
                &turn.observation,
                i == 0,
                &turn.tips,
            )?);
            let mut tokens = tokenizer.encode(turn.action.trim())?;
            tokens.push(tokenizer.im_end());
            segments.push(Segment {
                kind: SegmentKind::Action,
                logprobs: vec![0.0; tokens.len()],
                tokens,
            });
        }
        let steps = self.turns.len();
        let with_tips = self.turns.iter().any(|t| !t.tips.is_empty());
        Ok(Episode {
            mode: if with_tips { Mode::MemOn } else { Mode::Plain },
            segments,
            extrinsic: vec![0.0; steps],
            intrinsic: vec![0.0; steps],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> ChatTokenizer {
        policy::init::train_tokenizer(512).unwrap()
    }

    fn demo(tips: Vec<String>) -> Demonstration {
        Demonstration {
            task_description: "Your task is to find a plant.".into(),
            turns: vec![
                Turn {
                    observation: "This room is called the kitchen.".into(),
                    tips,
                    action: "go to hallway".into(),
                },
                Turn {
                    observation: "You move to the hallway.".into(),
                    tips: Vec::new(),
                    action: "focus on fern".into(),
                },
            ],
        }
    }

    #[test]
    fn a_demonstration_has_the_segments_an_actor_would_send() {
        let tok = tokenizer();
        let episode = demo(Vec::new()).episode(&tok).unwrap();
        use SegmentKind::*;
        let kinds: Vec<SegmentKind> = episode.segments.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                System,
                Observation,
                Observation,
                Action,
                Observation,
                Observation,
                Action
            ]
        );
        assert_eq!(episode.mode, Mode::Plain);
        episode.validate(tok.vocab_size()).unwrap();
        let action = &episode.segments[3].tokens;
        assert_eq!(*action.last().unwrap(), tok.im_end());
        assert_eq!(
            tok.decode(&action[..action.len() - 1]).unwrap(),
            "go to hallway"
        );
        // The turn text is the actor's: the same helper builds both.
        let turn = prompt::turn(&tok, "You move to the hallway.", false, &[]).unwrap();
        assert_eq!(episode.segments[4..6], turn[..]);
    }

    #[test]
    fn tips_get_their_own_segment_and_keep_it_in_training() {
        let tok = tokenizer();
        let episode = demo(vec!["Go to the greenhouse first.".into()])
            .episode(&tok)
            .unwrap();
        assert_eq!(episode.mode, Mode::MemOn);
        assert_eq!(episode.segments[2].kind, SegmentKind::Tip);
        let text = tok.decode(&episode.segments[2].tokens).unwrap();
        assert!(text.contains("greenhouse first"), "{text}");
    }

    #[test]
    fn an_empty_action_or_task_is_refused() {
        let tok = tokenizer();
        let mut d = demo(Vec::new());
        d.turns[1].action = "  ".into();
        let err = d.episode(&tok).unwrap_err().to_string();
        assert!(err.contains("turn 1 has an empty action"), "{err}");
        let mut d = demo(Vec::new());
        d.task_description.clear();
        assert!(d.episode(&tok).is_err());
        d = demo(Vec::new());
        d.turns.clear();
        assert!(
            d.episode(&tok)
                .unwrap_err()
                .to_string()
                .contains("no turns")
        );
    }
}
