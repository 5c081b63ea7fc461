//! A group played for real: the tiny policy, the built-in world over gRPC and the tip memory
//! service (embedded store, hash embedder) over gRPC, all on loopback.
//!
//! 1. a mem_off group: every episode is complete and valid, tips are written and stored
//! 2. a second group of the same slot is shown those tips, as their own segments
//! 3. a plain group: no tip segments, no retrievals
//! 4. the `policy` tip writer: the policy answers a reflection turn after each episode; the
//!    answer is the tip, and nothing of it enters the episode trained on

use std::sync::Arc;

use actor::{GroupSpec, MemoryClient, Sampling, play_group};
use actor::{TipWriter, Tips};
use envs::EnvClient;
use memory_service::MemoryConfig;
use memory_service::config::EmbedderKind;
use policy::init::{Preset, init_policy};
use trajectory::{LeaseRef, Mode, SegmentKind};

async fn serve_env() -> EnvClient {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let env = Arc::new(envs::Builtin::new());
    tokio::spawn(envs::serve(
        listener,
        env,
        Default::default(),
        std::future::pending(),
    ));
    EnvClient::connect(&addr.to_string()).await.unwrap()
}

async fn serve_memory(dir: &std::path::Path) -> MemoryClient {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut cfg = MemoryConfig::default();
    cfg.embedder.kind = EmbedderKind::Hash;
    cfg.data_dir = dir.to_path_buf();
    tokio::spawn(memory_service::serve(listener, cfg, std::future::pending()));
    for _ in 0..100 {
        if let Ok(client) = MemoryClient::connect(&addr.to_string(), None).await {
            return client;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("memory service did not start");
}

fn spec(mode: Mode, seed: u64) -> GroupSpec {
    GroupSpec {
        lease: LeaseRef {
            task: "find-animal".into(),
            variation: 3,
            slot: "find-animal/3".into(),
            ..LeaseRef::default()
        },
        mode,
        group_size: 4,
        seed,
        sampling: Sampling {
            temperature: 1.0,
            top_p: 1.0,
            max_action_tokens: 8,
            max_steps: 6,
            max_prompt_tokens: 2048,
        },
        policy_version: 0,
        write_tips: true,
        tips: Tips {
            writer: TipWriter::Summary,
            repeat: true,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_play_with_tips_and_without() {
    let policy = init_policy(Preset::Tiny, 3).unwrap();
    let vocab = policy.tokenizer.vocab_size();
    let dir = tempfile::tempdir().unwrap();
    let mut env = serve_env().await;
    let mut memory = serve_memory(dir.path()).await;

    let (first, timing) = play_group(&policy, &mut env, Some(&mut memory), &spec(Mode::MemOff, 1))
        .await
        .unwrap();
    assert_eq!(first.len(), 4);
    for p in &first {
        p.episode.validate(vocab).unwrap();
        assert!(p.rollout.steps >= 1 && p.rollout.steps <= 6);
        assert_eq!(p.episode.extrinsic.len(), p.rollout.steps as usize);
        assert_eq!(p.episode.intrinsic.len(), p.rollout.steps as usize);
        assert!(
            p.episode.intrinsic.iter().all(|r| *r > 0.0 && *r <= 1.0),
            "novelty rewards 1/(n+1)"
        );
        let actions = p
            .episode
            .segments
            .iter()
            .filter(|s| s.kind == SegmentKind::Action)
            .count();
        assert_eq!(actions, p.rollout.steps as usize);
        assert!(p.tip.contains("final score"), "{}", p.tip);
        assert!(
            p.rollout.retrievals >= p.rollout.steps,
            "one retrieval per turn"
        );
    }
    assert!(timing.tokens > 0 && timing.memory > std::time::Duration::ZERO);
    eprintln!(
        "1. mem_off group: scores {:?}, {timing:?}",
        first.iter().map(|p| p.final_score).collect::<Vec<_>>()
    );

    let (second, _) = play_group(&policy, &mut env, Some(&mut memory), &spec(Mode::MemOn, 2))
        .await
        .unwrap();
    let shown: u32 = second.iter().map(|p| p.rollout.tips_shown).sum();
    assert!(
        shown > 0,
        "the second group retrieves the first group's tips"
    );
    let tip_segments = second[0]
        .episode
        .segments
        .iter()
        .filter(|s| s.kind == SegmentKind::Tip)
        .count();
    assert!(tip_segments > 0);
    eprintln!("2. mem_on group: {shown} tips shown");

    // Without repeats a turn shows its tips only when they differ from the last block shown.
    let once = GroupSpec {
        tips: Tips {
            writer: TipWriter::Summary,
            repeat: false,
        },
        ..spec(Mode::MemOn, 2)
    };
    let (third, _) = play_group(&policy, &mut env, Some(&mut memory), &once)
        .await
        .unwrap();
    let mut blocks_shown = 0;
    for p in &third {
        let blocks: Vec<&Vec<u32>> = p
            .episode
            .segments
            .iter()
            .filter(|s| s.kind == SegmentKind::Tip)
            .map(|s| &s.tokens)
            .collect();
        assert!(
            blocks.windows(2).all(|w| w[0] != w[1]),
            "a tip block repeats the one before it"
        );
        blocks_shown += blocks.len();
    }
    assert!(blocks_shown > 0, "tips that differ are shown");

    let (plain, _) = play_group(&policy, &mut env, Some(&mut memory), &spec(Mode::Plain, 3))
        .await
        .unwrap();
    for p in &plain {
        assert_eq!(p.rollout.retrievals, 0);
        assert!(
            p.episode
                .segments
                .iter()
                .all(|s| s.kind != SegmentKind::Tip)
        );
    }
    eprintln!("3. plain group: no tips");

    let policy_written = GroupSpec {
        tips: Tips {
            writer: TipWriter::Policy,
            repeat: true,
        },
        ..spec(Mode::Plain, 4)
    };
    let (reflected, _) = play_group(&policy, &mut env, Some(&mut memory), &policy_written)
        .await
        .unwrap();
    for p in &reflected {
        assert!(!p.tip.is_empty() && !p.tip.contains('\n'), "{:?}", p.tip);
        assert!(p.tip.split(' ').count() <= 100);
        assert_eq!(
            p.episode.segments.last().map(|s| s.kind),
            Some(SegmentKind::Action),
            "the reflection is not part of the episode"
        );
        p.episode.validate(vocab).unwrap();
    }
    let written = reflected
        .iter()
        .filter(|p| !p.tip.contains("final score"))
        .count();
    assert!(
        written > 0,
        "the policy wrote the tips, not the summary writer"
    );
    eprintln!("4. policy-written tip: {:?}", reflected[0].tip);
}
