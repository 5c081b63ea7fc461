//! Returns and GRPO group advantages (ALGORITHM.md §4), and the advantage step: a group's
//! episodes packed with their advantages, ready for the update.

use crate::intake::Group;
use crate::pack::pack;
use crate::update::Item;

/// The return of an episode: R = Σ r_ext + λ Σ r_int over the whole trajectory.
pub fn episode_return(extrinsic: &[f32], intrinsic: &[f32], lambda: f32) -> f32 {
    extrinsic.iter().sum::<f32>() + lambda * intrinsic.iter().sum::<f32>()
}

/// GRPO advantages of one group: A_i = (R_i − mean R) / (std R + 1e-6), std with ddof = 1.
/// A group of one has no spread: its advantage is 0.
pub fn group_advantages(returns: &[f32]) -> Vec<f32> {
    let n = returns.len();
    if n < 2 {
        return vec![0.0; n];
    }
    let mean = returns.iter().sum::<f32>() / n as f32;
    let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f32>() / (n - 1) as f32;
    let std = var.sqrt();
    returns.iter().map(|r| (r - mean) / (std + 1e-6)).collect()
}

/// Packs a group's episodes with their GRPO advantages on the full return.
pub fn group_items(group: &Group, lambda: f32) -> Vec<Item> {
    let returns: Vec<f32> = group
        .episodes
        .iter()
        .map(|e| episode_return(&e.episode.extrinsic, &e.episode.intrinsic, lambda))
        .collect();
    group
        .episodes
        .iter()
        .zip(group_advantages(&returns))
        .map(|(e, advantage)| Item {
            packed: pack(&e.episode),
            advantage,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_add_the_weighted_intrinsic_reward() {
        assert_eq!(
            episode_return(&[10.0, 0.0, 90.0], &[1.0, 0.5, 0.25], 1.0),
            101.75
        );
        assert_eq!(
            episode_return(&[10.0, 0.0, 90.0], &[1.0, 0.5, 0.25], 0.0),
            100.0
        );
    }

    #[test]
    fn advantages_match_a_hand_computation() {
        // R = [0, 50, 100]: mean 50, sample std = sqrt((2500 + 0 + 2500) / 2) = 50.
        let a = group_advantages(&[0.0, 50.0, 100.0]);
        let want = [-1.0, 0.0, 1.0];
        for (got, want) in a.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{a:?}");
        }
    }

    #[test]
    fn equal_returns_and_single_episodes_give_zero() {
        assert_eq!(group_advantages(&[30.0; 4]), vec![0.0; 4]);
        assert_eq!(group_advantages(&[30.0]), vec![0.0]);
        assert!(group_advantages(&[]).is_empty());
    }
}
