//! Check of batch normalisation: batch statistics and the running-stat update, the training
//! and inference forwards, and dgamma, dbeta, dx.

use anyhow::Result;
use rand::Rng;
use serde_json::json;

use super::{run_and_read, Inputs, OpCheck, Pass};
use crate::gpu::Gpu;
use crate::ops::batchnorm::{self, cpu, BatchnormShape};
use crate::ops::compare::{max_abs, Tol};

/// The tolerance of a value whose error is that of a mean of `m` values bounded by `bound`
/// (`Tol::sum_of` of the m terms `bound / m`: an absolute error of 4 eps * bound).
fn mean_of(m: usize, bound: f64) -> Tol {
    Tol::sum_of(m, bound / m.max(1) as f64)
}

/// Runs all five kernels on seeded inputs. Each channel of x gets its own offset and spread,
/// so a channel mix-up shows, and |mean| up to 16x the spread exercises the two-pass variance.
/// The inference forward runs first, on the running statistics as given, so it is checked as
/// the purely elementwise map it is; the update of those statistics is checked on its own.
pub fn check_batchnorm(gpu: &Gpu, s: &BatchnormShape, seed: u64) -> Result<OpCheck> {
    let s = *s;
    let (len, ch, m) = (s.len(), s.channels, s.count());
    let shape = [s.batch, s.channels, s.height, s.width];
    let name = match (s.relu, s.vec4()) {
        (false, false) => "batchnorm",
        (false, true) => "batchnorm vec4",
        (true, false) => "batchnorm+relu",
        (true, true) => "batchnorm+relu vec4",
    };
    let mut c = OpCheck::new(
        name,
        json!({
            "eps": s.eps, "momentum": s.momentum, "running_variance": "biased (Keras)",
            "relu": s.relu, "vec4": s.vec4(),
        }),
    );
    let mut inp = Inputs::new(gpu, seed);
    let (shift, spread): (Vec<f32>, Vec<f32>) = (0..ch)
        .map(|_| {
            let r = inp.rng();
            (r.random_range(-4.0..4.0), r.random_range(0.25..2.0))
        })
        .unzip();
    let x_data: Vec<f32> = (0..len)
        .map(|i| {
            let k = (i / s.hw()) % ch;
            shift[k] + spread[k] * inp.rng().random_range(-1.0f32..1.0)
        })
        .collect();
    let (x, xb) = inp.given(&mut c, "x", &shape, x_data);
    let (gamma, gb) = inp.uniform(&mut c, "gamma", &[ch], -1.5, 1.5);
    let (beta, bb) = inp.uniform(&mut c, "beta", &[ch], -1.0, 1.0);
    let (rm0, rmb) = inp.uniform(&mut c, "running_mean", &[ch], -1.0, 1.0);
    let (rv0, rvb) = inp.uniform(&mut c, "running_var", &[ch], 0.5, 2.0);
    let (dy, dyb) = inp.uniform(&mut c, "dy", &shape, -1.0, 1.0);
    let z = |name| gpu.zeros(name, len);
    let zc = |name| gpu.zeros(name, ch);
    let (yb, yeb, dxb) = (z("y"), z("y_eval"), z("dx"));
    let (smb, sib, dgb, dbb) = (
        zc("save_mean"),
        zc("save_invstd"),
        zc("dgamma"),
        zc("dbeta"),
    );
    // A fused ReLU's backward masks dy by the forward's output, here the GPU's own.
    let mask = s.relu.then_some(&yb);
    // The scratch the backward kernels share, poisoned: read before written shows as NaN.
    let kb = gpu.upload("coeffs", &vec![f32::NAN; batchnorm::coeffs_len(ch)]);
    let ds = vec![
        batchnorm::forward_eval(&xb, &gb, &bb, &rmb, &rvb, &yeb, s),
        batchnorm::stats(&xb, &rmb, &rvb, &smb, &sib, s),
        batchnorm::forward(&xb, &gb, &bb, &smb, &sib, &yb, s),
        batchnorm::backward_weight(&xb, &dyb, mask, &smb, &sib, &dgb, &dbb, &kb, s),
        batchnorm::backward_input(&xb, &dyb, mask, &gb, &kb, &dxb, s),
    ];
    let outs = run_and_read(
        gpu,
        ds,
        &[
            (&yeb, len),
            (&smb, ch),
            (&sib, ch),
            (&rmb, ch),
            (&rvb, ch),
            (&yb, len),
            (&dgb, ch),
            (&dbb, ch),
            (&dxb, len),
        ],
    )?;
    let [y_eval, save_mean, save_invstd, rm, rv, y, dgamma, dbeta, dx]: [Vec<f32>; 9] =
        outs.try_into().expect("nine outputs read");

    let y_eval_ref = cpu::forward_eval(&x, &gamma, &beta, &rm0, &rv0, s);
    let (mut rm_ref, mut rv_ref) = (rm0.clone(), rv0.clone());
    let (mean_ref, invstd_ref) = cpu::stats(&x, &mut rm_ref, &mut rv_ref, s);
    let y_ref = cpu::forward(&x, &gamma, &beta, &mean_ref, &invstd_ref, s);
    // The reference backward masks by the same output the GPU's did (a value within rounding
    // of zero may land on either side of it in f64).
    let y_mask: Vec<f64> = y.iter().map(|&v| v as f64).collect();
    let (dg_ref, db_ref) = cpu::backward_weight(&x, &dy, &y_mask, &mean_ref, &invstd_ref, s);
    let dx_ref = cpu::backward_input(
        &x,
        &dy,
        &y_mask,
        &gamma,
        &mean_ref,
        &invstd_ref,
        &dg_ref,
        &db_ref,
        s,
    );

    // Error budget, per channel then the worst channel, in units of 4 eps (the unit of
    // `Tol::sum_of` and `mean_of`). The statistics are means over M values, so in that model
    // their errors do not grow with M; every downstream tensor inherits them. The magnitudes
    // come from the data (the reference statistics and the inputs).
    let b = Budget::new(
        &x,
        &dy,
        &gamma,
        &beta,
        &mean_ref,
        &invstd_ref,
        &dg_ref,
        &db_ref,
        s,
    );
    c.output(
        Pass::Forward,
        "save_mean",
        &[ch],
        save_mean,
        mean_ref,
        mean_of(m, b.mean),
    );
    c.output(
        Pass::Forward,
        "save_invstd",
        &[ch],
        save_invstd,
        invstd_ref,
        mean_of(m, b.invstd),
    );
    // momentum * old + (1 - momentum) * batch: the batch stat's error, shrunk, plus roundings
    // of values below max(|old|, |batch|) (|old| < 1 for the mean, < 2 for the variance).
    c.output(
        Pass::Forward,
        "running_mean",
        &[ch],
        rm,
        rm_ref,
        mean_of(m, b.mean + 1.0),
    );
    c.output(
        Pass::Forward,
        "running_var",
        &[ch],
        rv,
        rv_ref,
        mean_of(m, b.var + 2.0),
    );
    c.output(Pass::Forward, "y", &shape, y, y_ref, mean_of(m, b.y));
    // Inference: exact inputs and five f32 operations (WGSL's sqrt and divide may be off by a
    // few ulp) on values below |gamma * xhat| + |beta|; sum_of(8, ..) allows 32 eps of them.
    let y_eval_max = (0..len)
        .map(|i| {
            let k = (i / s.hw()) % ch;
            (gamma[k] * (x[i] - rm0[k]) / (rv0[k] + s.eps as f64).sqrt()).abs() + beta[k].abs()
        })
        .fold(0.0, f64::max);
    c.output(
        Pass::Forward,
        "y_eval",
        &shape,
        y_eval,
        y_eval_ref,
        Tol::sum_of(8, y_eval_max),
    );
    // dbeta: an M-term sum of dy.
    c.output(
        Pass::Backward,
        "dbeta",
        &[ch],
        dbeta,
        db_ref,
        Tol::sum_of(m, max_abs(&dy)),
    );
    c.output(
        Pass::Backward,
        "dgamma",
        &[ch],
        dgamma,
        dg_ref,
        mean_of(m, b.dgamma),
    );
    c.output(Pass::Backward, "dx", &shape, dx, dx_ref, mean_of(m, b.dx));
    Ok(c)
}

/// Worst-channel error bounds of each output, in units of 4 eps; see `check_batchnorm`.
struct Budget {
    mean: f64,
    var: f64,
    invstd: f64,
    y: f64,
    dgamma: f64,
    dx: f64,
}

impl Budget {
    #[allow(clippy::too_many_arguments)]
    fn new(
        x: &[f64],
        dy: &[f64],
        gamma: &[f64],
        beta: &[f64],
        mean: &[f64],
        invstd: &[f64],
        dgamma: &[f64],
        dbeta: &[f64],
        s: BatchnormShape,
    ) -> Self {
        let m = s.count() as f64;
        let dymax = max_abs(dy);
        let mut b = Budget {
            mean: 0.0,
            var: 0.0,
            invstd: 0.0,
            y: 0.0,
            dgamma: 0.0,
            dx: 0.0,
        };
        for c in 0..s.channels {
            let (mut xmax, mut dmax) = (0.0f64, 0.0f64);
            for n in 0..s.batch {
                let plane = (n * s.channels + c) * s.hw();
                for &v in &x[plane..plane + s.hw()] {
                    xmax = xmax.max(v.abs());
                    dmax = dmax.max((v - mean[c]).abs());
                }
            }
            let (ic, g) = (invstd[c], gamma[c].abs());
            let h = dmax * ic; // largest |xhat| in the channel
                               // The mean: M values bounded by xmax. The variance: M squared deviations.
            let e_mean = xmax;
            let e_var = dmax * dmax;
            // d invstd / d var = -invstd^3 / 2, i.e. half the variance's relative error
            // (invstd^2 * dmax^2 = h^2 of it), plus the sqrt's and divide's own roundings.
            let e_invstd = ic * (0.5 * h * h + 1.0);
            // xhat = (x - mean) * invstd: the mean's error times invstd, invstd's relative
            // error times |xhat|, and the subtract's and multiply's roundings.
            let e_xhat = ic * e_mean + dmax * e_invstd + h;
            // dgamma: the M-term sum's own rounding (terms below dymax * h), plus the error xhat
            // carries -- nearly constant in a channel (the mean's part, summed against dy: a
            // multiple of dbeta) or proportional to xhat (invstd's part, a multiple of dgamma).
            let e_dgamma = m * dymax * h
                + dbeta[c].abs() * ic * e_mean
                + dgamma[c].abs() * (0.5 * h * h + 1.0);
            // dx = gamma * invstd * B, B = dy - (dbeta + xhat * dgamma) / M: dbeta / M and
            // dgamma / M carry their sums' errors over M, xhat its own times dgamma / M, and B's
            // three operations round values below |B|; then invstd's error multiplies B.
            let b_max = dymax + (dbeta[c].abs() + h * dgamma[c].abs()) / m;
            let e_b = dymax + h * e_dgamma / m + e_xhat * dgamma[c].abs() / m + b_max;
            let e_dx = g * (ic * e_b + e_invstd * b_max + ic * b_max);
            b.mean = b.mean.max(e_mean);
            b.var = b.var.max(e_var);
            b.invstd = b.invstd.max(e_invstd);
            b.y = b.y.max(g * (e_xhat + h) + beta[c].abs());
            b.dgamma = b.dgamma.max(e_dgamma);
            b.dx = b.dx.max(e_dx);
        }
        b
    }
}
