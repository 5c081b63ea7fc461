//! Action correction: free text from the policy → the nearest valid action, by Jaccard
//! similarity of lower-cased word sets (as the EMPO² reference's ScienceWorld wrapper does).
//! Shared by every environment: actors apply it client-side before stepping.

use std::collections::BTreeSet;

/// The valid action closest to `text` and its similarity in (0, 1]; `None` if no valid action
/// shares a word with it. An exact (case- and space-insensitive) match wins outright; ties go
/// to the earlier action in `valid`.
pub fn nearest_action<'a>(text: &str, valid: &'a [String]) -> Option<(&'a str, f32)> {
    let words = word_set(text);
    if words.is_empty() {
        return None;
    }
    let mut best: Option<(&str, f32)> = None;
    for action in valid {
        let candidate = word_set(action);
        if candidate == words {
            return Some((action, 1.0));
        }
        let shared = words.intersection(&candidate).count();
        if shared == 0 {
            continue;
        }
        let similarity = shared as f32 / words.union(&candidate).count() as f32;
        if best.is_none_or(|(_, s)| similarity > s) {
            best = Some((action, similarity));
        }
    }
    best
}

/// Lower-cased words, punctuation at either end removed.
fn word_set(text: &str) -> BTreeSet<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exact_match_wins_even_after_a_tie() {
        let valid = actions(&["open door to kitchen", "go to kitchen", "go to hallway"]);
        assert_eq!(
            nearest_action("Go to  kitchen.", &valid),
            Some(("go to kitchen", 1.0))
        );
    }

    #[test]
    fn picks_the_highest_jaccard() {
        let valid = actions(&["focus on red box", "take red wire", "take blue wire"]);
        // {take, the, red, wire} vs {take, red, wire}: 3/4; vs {take, blue, wire}: 2/5.
        let (action, similarity) = nearest_action("take the red wire", &valid).unwrap();
        assert_eq!(action, "take red wire");
        assert!((similarity - 0.75).abs() < 1e-6);
    }

    #[test]
    fn word_order_does_not_matter() {
        let valid = actions(&["connect battery anode to red wire terminal 1"]);
        let (action, similarity) =
            nearest_action("connect red wire terminal 1 to battery anode", &valid).unwrap();
        assert_eq!(action, valid[0]);
        assert_eq!(similarity, 1.0);
    }

    #[test]
    fn nothing_in_common_is_none() {
        let valid = actions(&["look around", "inventory"]);
        assert_eq!(nearest_action("fly away", &valid), None);
        assert_eq!(nearest_action("  ", &valid), None);
        assert_eq!(nearest_action("look", &[]), None);
    }

    #[test]
    fn ties_go_to_the_first_listed() {
        let valid = actions(&["take apple", "take pear"]);
        assert_eq!(nearest_action("take", &valid).unwrap().0, "take apple");
    }
}
