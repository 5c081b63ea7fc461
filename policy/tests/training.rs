//! Training works: after one backward pass every parameter tensor has a non-zero gradient,
//! and a few AdamW steps on a fixed batch raise the log-prob of the rewarded tokens.

mod common;

use candle_core::Device;
use policy::optim::AdamW;
use policy::score::token_logprobs;

policy::test_device!(every_parameter_gets_a_gradient);
fn every_parameter_gets_a_gradient(device: &Device) {
    let policy = common::tiny_on(device);
    let seqs: Vec<Vec<u32>> = ["look around and open the door", "go to the kitchen"]
        .iter()
        .map(|t| policy.tokenizer.encode(t).unwrap())
        .collect();
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    let (logprobs, entropy) = token_logprobs(&policy.model, &refs, 1.0, true).unwrap();
    // Loss touches every path: log-probs (all layers, the tied head) and the entropy.
    let loss = ((logprobs.sum_all().unwrap().neg().unwrap() + entropy.unwrap().sum_all().unwrap())
        .unwrap()
        * 0.1)
        .unwrap();
    let grads = loss.backward().unwrap();
    let data = policy.vars.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut without = Vec::new();
    for name in &names {
        let var = &data[*name];
        let norm = grads
            .get(var.as_tensor())
            .map(|g| {
                g.sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            })
            .unwrap_or(0.0);
        if !(norm > 0.0 && norm.is_finite()) {
            without.push((*name).clone());
        }
    }
    eprintln!(
        "{}/{} parameter tensors get a gradient",
        names.len() - without.len(),
        names.len()
    );
    assert!(without.is_empty(), "no gradient for {without:?}");
}

policy::test_device!(adamw_steps_raise_the_logprob_of_rewarded_tokens);
fn adamw_steps_raise_the_logprob_of_rewarded_tokens(device: &Device) {
    let policy = common::tiny_on(device);
    let rewarded = policy
        .tokenizer
        .encode("<|im_start|>assistant\nopen door to hallway<|im_end|>")
        .unwrap();
    let mean_logprob = || {
        let (lp, _) = token_logprobs(&policy.model, &[&rewarded], 1.0, false).unwrap();
        lp.sum_all().unwrap().to_scalar::<f32>().unwrap() / (rewarded.len() - 1) as f32
    };
    let before = mean_logprob();
    let mut opt = AdamW::new(&policy.vars, 3e-3, 0.01).unwrap();
    for _ in 0..5 {
        let (lp, _) = token_logprobs(&policy.model, &[&rewarded], 1.0, false).unwrap();
        let loss = (lp.sum_all().unwrap().neg().unwrap() / (rewarded.len() - 1) as f64).unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
    }
    let after = mean_logprob();
    eprintln!("mean log-prob of the rewarded tokens: {before:.3} → {after:.3}");
    assert!(after > before + 0.5, "{before} → {after}");
}
