//! Our AdamW takes the same steps as candle's, and its saved state resumes the same
//! trajectory: a run stopped and resumed from a checkpoint continues exactly. Large tensors
//! take the in-place kernels in parallel chunks; f64 takes the composed ops (as every dtype
//! does on CUDA). bf16 parameters step through f32 master weights, saved with the state.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Optimizer, ParamsAdamW, VarMap};
use policy::optim::AdamW;

fn vars(seed: f32, device: &Device) -> VarMap {
    let map = VarMap::new();
    let mut data = map.data().lock().unwrap();
    for (name, shape) in [("a", (3, 4)), ("b", (4, 2))] {
        let n = shape.0 * shape.1;
        let values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect();
        let t = Tensor::from_vec(values, shape, device).unwrap();
        data.insert(name.into(), Var::from_tensor(&t).unwrap());
    }
    drop(data);
    map
}

fn loss(map: &VarMap) -> Tensor {
    let data = map.data().lock().unwrap();
    let (a, b) = (data["a"].as_tensor(), data["b"].as_tensor());
    a.matmul(b).unwrap().sqr().unwrap().sum_all().unwrap()
}

fn values(map: &VarMap) -> Vec<f32> {
    let data = map.data().lock().unwrap();
    ["a", "b"]
        .iter()
        .flat_map(|n| {
            data[*n]
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

/// Parameters set from `values` (as a checkpoint's weights would be).
fn restore(values: &[f32], device: &Device) -> VarMap {
    let map = vars(1.0, device);
    let data = map.data().lock().unwrap();
    let (a, b) = values.split_at(12);
    data["a"]
        .set(&Tensor::from_slice(a, (3, 4), device).unwrap())
        .unwrap();
    data["b"]
        .set(&Tensor::from_slice(b, (4, 2), device).unwrap())
        .unwrap();
    drop(data);
    map
}

/// `map` with its parameters in `dtype`.
fn cast(map: &VarMap, dtype: DType) -> VarMap {
    let cast = VarMap::new();
    for (name, var) in map.data().lock().unwrap().iter() {
        let t = var.as_tensor().to_dtype(dtype).unwrap();
        let var = Var::from_tensor(&t).unwrap();
        cast.data().lock().unwrap().insert(name.clone(), var);
    }
    cast
}

/// `n` steps of `opt` on `map`'s loss.
fn steps(opt: &mut AdamW, map: &VarMap, n: usize) {
    for _ in 0..n {
        opt.step(&loss(map).backward().unwrap()).unwrap();
    }
}

/// Six steps of a fresh AdamW at `lr` on `map`, saved to `path` after the third: the weights
/// at the save, as a checkpoint holds them.
fn run_with_checkpoint(map: &VarMap, lr: f64, path: &std::path::Path) -> Vec<f32> {
    let mut opt = AdamW::new(map, lr, 0.0).unwrap();
    steps(&mut opt, map, 3);
    opt.save(path).unwrap();
    let snapshot = values(map);
    steps(&mut opt, map, 3);
    snapshot
}

policy::test_device!(takes_the_same_steps_as_candle_adamw);
fn takes_the_same_steps_as_candle_adamw(device: &Device) {
    let ours_vars = vars(0.0, device);
    let theirs_vars = vars(0.0, device);
    let mut ours = AdamW::new(&ours_vars, 1e-2, 0.01).unwrap();
    let params = ParamsAdamW {
        lr: 1e-2,
        weight_decay: 0.01,
        ..ParamsAdamW::default()
    };
    let mut theirs = candle_nn::AdamW::new(theirs_vars.all_vars(), params).unwrap();
    for _ in 0..5 {
        ours.step(&loss(&ours_vars).backward().unwrap()).unwrap();
        theirs.backward_step(&loss(&theirs_vars)).unwrap();
    }
    let before = values(&vars(0.0, device));
    let (a, b) = (values(&ours_vars), values(&theirs_vars));
    assert_ne!(a, before, "the steps moved the parameters");
    // The same f32 arithmetic in another order (fused kernel vs composed ops): an ulp or two.
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-6, "{x} vs {y}");
    }
}

policy::test_device!(saved_state_resumes_the_same_trajectory);
fn saved_state_resumes_the_same_trajectory(device: &Device) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opt.safetensors");
    let straight = vars(1.0, device);
    let snapshot = run_with_checkpoint(&straight, 1e-2, &path);

    // A new process: the parameters from the checkpoint, a fresh optimizer loaded from disk.
    let resumed = restore(&snapshot, device);
    let mut opt2 = AdamW::new(&resumed, 1e-2, 0.0).unwrap();
    opt2.load(&path).unwrap();
    assert_eq!(opt2.steps(), 3);
    steps(&mut opt2, &resumed, 3);
    assert_eq!(
        values(&resumed),
        values(&straight),
        "bit-identical continuation"
    );

    // Fresh moments would diverge: the state matters.
    let cold = restore(&snapshot, device);
    steps(&mut AdamW::new(&cold, 1e-2, 0.0).unwrap(), &cold, 3);
    assert_ne!(values(&cold), values(&straight));
}

// On a large tensor too (the kernels split it into parallel chunks), and in f64 (the
// composed ops).
policy::test_device!(takes_the_same_steps_on_large_and_f64_tensors);
fn takes_the_same_steps_on_large_and_f64_tensors(device: &Device) {
    for dtype in [DType::F32, DType::F64] {
        let ours = VarMap::new();
        let theirs = VarMap::new();
        let values: Vec<f32> = (0..40_000)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let init = Tensor::from_vec(values, (200, 200), device)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        for map in [&ours, &theirs] {
            let var = Var::from_tensor(&init).unwrap();
            map.data().lock().unwrap().insert("w".into(), var);
        }
        let mut our_opt = AdamW::new(&ours, 1e-2, 0.1).unwrap();
        let params = ParamsAdamW {
            lr: 1e-2,
            weight_decay: 0.1,
            ..ParamsAdamW::default()
        };
        let mut their_opt = candle_nn::AdamW::new(theirs.all_vars(), params).unwrap();
        // A loss whose gradient changes each step: Σ sin(w) ⊙ w.
        let loss = |map: &VarMap| {
            let w = map.data().lock().unwrap()["w"].as_tensor().clone();
            (w.sin().unwrap() * &w).unwrap().sum_all().unwrap()
        };
        for _ in 0..4 {
            our_opt.step(&loss(&ours).backward().unwrap()).unwrap();
            their_opt.backward_step(&loss(&theirs)).unwrap();
        }
        let get = |map: &VarMap| {
            let w = map.data().lock().unwrap()["w"].as_tensor().clone();
            w.to_dtype(DType::F32).unwrap()
        };
        let init = init.to_dtype(DType::F32).unwrap();
        let diff = common::max_abs_diff(&get(&ours), &get(&theirs));
        let moved = common::max_abs_diff(&get(&ours), &init);
        assert!(moved > 0.01, "{dtype:?}: the parameters did not move");
        assert!(diff < 1e-5, "{dtype:?}: differs from candle-nn by {diff}");
    }
}

policy::test_device!(bf16_parameters_step_through_f32_master_weights);
fn bf16_parameters_step_through_f32_master_weights(device: &Device) {
    // Weights near 1 in bf16 are 2⁻⁷ ≈ 0.0078 apart. AdamW at lr 1e-4 moves each by about
    // 1e-4 a step: stepped in bf16 itself, every step would round back to where it was.
    let lr = 1e-4;
    let full = vars(0.0, device);
    let half = cast(&full, DType::BF16);
    let mut full_opt = AdamW::new(&full, lr, 0.0).unwrap();
    let mut half_opt = AdamW::new(&half, lr, 0.0).unwrap();
    steps(&mut full_opt, &full, 200);
    steps(&mut half_opt, &half, 200);
    let start = values(&cast(&vars(0.0, device), DType::BF16));
    let (f, h) = (values(&full), values(&half));
    let moved = h.iter().zip(&start).filter(|(a, b)| a != b).count();
    assert!(
        moved >= h.len() / 2,
        "{moved}/{} bf16 weights moved",
        h.len()
    );
    // The bf16 weights are the f32 run rounded, up to gradients taken in bf16: within a
    // couple of bf16 ulps (2⁻⁷ near 1) of the f32 trajectory, which moved about 0.02.
    let worst = f
        .iter()
        .zip(&h)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    let travel = f
        .iter()
        .zip(&values(&vars(0.0, device)))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    eprintln!(
        "f32 moved up to {travel:e}; bf16 vs f32 up to {worst:e}; {moved}/{} moved",
        h.len()
    );
    assert!(travel > 0.01, "{travel}");
    assert!(worst < 0.02, "{worst}");
}

policy::test_device!(a_resumed_bf16_run_continues_from_its_master_weights);
fn a_resumed_bf16_run_continues_from_its_master_weights(device: &Device) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opt.safetensors");
    let straight = cast(&vars(1.0, device), DType::BF16);
    let snapshot = run_with_checkpoint(&straight, 1e-3, &path);
    // The checkpoint's bf16 weights, then the optimizer state with its f32 master copy.
    let resumed = cast(&restore(&snapshot, device), DType::BF16);
    let mut opt2 = AdamW::new(&resumed, 1e-3, 0.0).unwrap();
    opt2.load(&path).unwrap();
    steps(&mut opt2, &resumed, 3);
    assert_eq!(
        values(&resumed),
        values(&straight),
        "bit-identical continuation"
    );
    // Weights that no longer round from the saved master copy (another checkpoint's) win.
    let other = cast(&vars(2.0, device), DType::BF16);
    let before = values(&other);
    let mut opt3 = AdamW::new(&other, 1e-3, 0.0).unwrap();
    opt3.load(&path).unwrap();
    opt3.step(&loss(&other).backward().unwrap()).unwrap();
    let after = values(&other);
    let jump = before
        .iter()
        .zip(&after)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        jump < 0.05,
        "one step moved a weight by {jump}: the stale master copy was used"
    );
}
