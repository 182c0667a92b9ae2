//! Faster stand-ins for two tract operators in BatDetect2's graph, swapped in before the
//! plan is optimised.
//!
//! Profiling the network on one thread (W = 3008, a 3 s chunk) showed the final channel
//! softmax taking ~35 % of the time and the three bilinear ×2 upsamplings (ONNX `Resize`,
//! `half_pixel`) another ~18 %: tract's generic versions walk the tensors element by element
//! with strides. The stand-ins compute the same functions plane by plane, in contiguous
//! loops the compiler vectorises:
//! - [`ChannelSoftmax`]: softmax over axis 1 of an `[N, C, H, W]` tensor.
//! - [`Upsample2x`]: bilinear ×2 in H and W with ONNX's `half_pixel` coordinates (PyTorch's
//!   `interpolate(scale_factor=2, mode="bilinear", align_corners=False)`): each output pixel
//!   is ¾ of its nearest input and ¼ of the next one away, the edge repeated at the borders.
//!
//! [`accelerate`] replaces only nodes whose attributes match exactly; anything else keeps
//! tract's operator, so a different export still runs, only slower. Parity with the
//! reference maps is checked by the model's tests.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::nn::{
    CoordTransformer, Interpolator, Resize, Softmax, SoftmaxKind,
};

/// Softmax over axis 1 of a rank-4 f32 tensor.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct ChannelSoftmax;

impl Op for ChannelSoftmax {
    fn name(&self) -> StaticName {
        "ChannelSoftmax".into()
    }

    op_as_typed_op!();
}

impl EvalOp for ChannelSoftmax {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext<'_>, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape: TVec<usize> = input.shape().into();
        ensure!(
            shape.len() == 4,
            "ChannelSoftmax wants a rank-4 tensor, got {shape:?}"
        );
        let (channels, plane) = (shape[1], shape[2] * shape[3]);
        let data = input.try_as_plain_ram()?.as_slice::<f32>()?;
        let mut out = vec![0f32; data.len()];
        let mut max = vec![0f32; plane];
        let mut sum = vec![0f32; plane];
        for (src, dst) in data
            .chunks_exact(channels * plane)
            .zip(out.chunks_exact_mut(channels * plane))
        {
            max.fill(f32::NEG_INFINITY);
            sum.fill(0.0);
            for c in src.chunks_exact(plane) {
                for (m, &x) in max.iter_mut().zip(c) {
                    *m = m.max(x);
                }
            }
            for (c, d) in src.chunks_exact(plane).zip(dst.chunks_exact_mut(plane)) {
                for (((d, &x), &m), s) in d.iter_mut().zip(c).zip(&max).zip(sum.iter_mut()) {
                    *d = (x - m).exp();
                    *s += *d;
                }
            }
            for d in dst.chunks_exact_mut(plane) {
                for (d, &s) in d.iter_mut().zip(&sum) {
                    *d /= s;
                }
            }
        }
        Ok(tvec!(
            tract_ndarray::ArrayD::from_shape_vec(&*shape, out)?.into_tvalue()
        ))
    }
}

impl TypedOp for ChannelSoftmax {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }
}

/// Bilinear ×2 upsampling of the last two axes of a rank-4 f32 tensor, `half_pixel`.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct Upsample2x;

impl Op for Upsample2x {
    fn name(&self) -> StaticName {
        "Upsample2x".into()
    }

    op_as_typed_op!();
}

/// One axis doubled: `out[2k] = ¾·in[k] + ¼·in[k-1]`, `out[2k+1] = ¾·in[k] + ¼·in[k+1]`,
/// with `in[-1] = in[0]` and `in[len] = in[len-1]`. `lane` is the stride of the axis in
/// `src` (1 for W, the row length for H): whole rows are combined at once.
fn double_axis(src: &[f32], len: usize, lane: usize, dst: &mut [f32]) {
    for k in 0..len {
        let here = &src[k * lane..][..lane];
        let before = &src[k.saturating_sub(1) * lane..][..lane];
        let after = &src[(k + 1).min(len - 1) * lane..][..lane];
        let (even, odd) = dst[2 * k * lane..][..2 * lane].split_at_mut(lane);
        for (((e, o), (&h, &b)), &a) in even
            .iter_mut()
            .zip(odd.iter_mut())
            .zip(here.iter().zip(before))
            .zip(after)
        {
            *e = 0.25 * b + 0.75 * h;
            *o = 0.75 * h + 0.25 * a;
        }
    }
}

impl EvalOp for Upsample2x {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext<'_>, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape: TVec<usize> = input.shape().into();
        ensure!(
            shape.len() == 4,
            "Upsample2x wants a rank-4 tensor, got {shape:?}"
        );
        let (height, width) = (shape[2], shape[3]);
        let planes = shape[0] * shape[1];
        let data = input.try_as_plain_ram()?.as_slice::<f32>()?;
        let mut out = vec![0f32; planes * 4 * height * width];
        if height > 0 && width > 0 {
            let mut tall = vec![0f32; 2 * height * width];
            for (src, dst) in data
                .chunks_exact(height * width)
                .zip(out.chunks_exact_mut(4 * height * width))
            {
                // H first (whole rows at once), then W row by row, as tract's Resize orders its axes.
                double_axis(src, height, width, &mut tall);
                for (line, out_line) in tall
                    .chunks_exact(width)
                    .zip(dst.chunks_exact_mut(2 * width))
                {
                    double_axis(line, width, 1, out_line);
                }
            }
        }
        let shape = [shape[0], shape[1], 2 * height, 2 * width];
        Ok(tvec!(
            tract_ndarray::ArrayD::from_shape_vec(&shape[..], out)?.into_tvalue()
        ))
    }
}

impl TypedOp for Upsample2x {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = &inputs[0].shape;
        ensure!(shape.rank() == 4, "Upsample2x wants a rank-4 input");
        Ok(tvec!(f32::fact([
            shape[0].clone(),
            shape[1].clone(),
            shape[2].clone() * 2,
            shape[3].clone() * 2
        ])))
    }
}

/// Whether `node` is a `Resize` that [`Upsample2x`] computes: linear, `half_pixel`, f32,
/// rank 4, and an output exactly twice the input in H and W and equal in N and C.
fn is_bilinear_doubling(
    model: &TypedModel,
    node: &TypedNode,
    resize: &Resize,
) -> TractResult<bool> {
    if resize.interpolator != Interpolator::Linear
        || resize.coord_transformer != CoordTransformer::HalfPixel
    {
        return Ok(false);
    }
    let input = model.outlet_fact(node.inputs[0])?;
    let output = model.outlet_fact(node.id.into())?;
    let (Some(i), Some(o)) = (input.shape.as_concrete(), output.shape.as_concrete()) else {
        return Ok(false);
    };
    Ok(input.datum_type == f32::datum_type()
        && i.len() == 4
        && o.len() == 4
        && o[0] == i[0]
        && o[1] == i[1]
        && o[2] == 2 * i[2]
        && o[3] == 2 * i[3])
}

/// Whether `node` is a `Softmax` that [`ChannelSoftmax`] computes: over axis 1 only, of a
/// rank-4 f32 tensor, not quantised, not log-softmax.
fn is_channel_softmax(
    model: &TypedModel,
    node: &TypedNode,
    softmax: &Softmax,
) -> TractResult<bool> {
    let input = model.outlet_fact(node.inputs[0])?;
    Ok(softmax.axes.as_slice() == [1]
        && softmax.quant_output_dt.is_none()
        && softmax.kind == SoftmaxKind::Softmax
        && input.datum_type == f32::datum_type()
        && input.rank() == 4)
}

/// Swaps in the stand-ins wherever they compute exactly what tract's operator does, and
/// returns how many nodes were replaced.
pub fn accelerate(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let patch = if let Some(resize) = node.op_as::<Resize>() {
            if !is_bilinear_doubling(model, node, resize)? {
                continue;
            }
            TypedModelPatch::replace_single_op(model, node, &node.inputs[..1], Upsample2x)?
        } else if let Some(softmax) = node.op_as::<Softmax>() {
            if !is_channel_softmax(model, node, softmax)? {
                continue;
            }
            TypedModelPatch::single_unary_op(model, node, ChannelSoftmax)?
        } else {
            continue;
        };
        patch.apply(model)?;
        replaced += 1;
    }
    Ok(replaced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::nn::Nearest;

    /// A deterministic, uneven tensor: no symmetry for a wrong index to hide behind.
    fn tensor(shape: [usize; 4]) -> Tensor {
        tract_ndarray::Array4::<f32>::from_shape_fn(shape, |(n, c, y, x)| {
            ((n * 31 + c * 17 + y * 7 + x * 3) as f32 * 0.37).sin() * 3.0 + (y as f32 * 0.1)
        })
        .into()
    }

    fn max_difference(a: &TValue, b: &TValue) -> f32 {
        assert_eq!(a.shape(), b.shape());
        let (a, b) = (
            a.to_plain_array_view::<f32>().unwrap(),
            b.to_plain_array_view::<f32>().unwrap(),
        );
        a.iter()
            .zip(b.iter())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn upsampling_matches_tracts_resize() {
        let resize = Resize {
            coord_transformer: CoordTransformer::HalfPixel,
            interpolator: Interpolator::Linear,
            nearest: Nearest::Floor,
            optional_scales_input: Some(1),
            optional_sizes_input: None,
        };
        // Odd, even and one-pixel sides: the borders repeat the edge.
        for shape in [[1, 3, 5, 7], [2, 2, 4, 6], [1, 1, 1, 1], [1, 2, 1, 5]] {
            let input = tensor(shape);
            let scales = tensor1(&[1f32, 1.0, 2.0, 2.0]);
            let want = resize
                .eval_out_of_plan(tvec![input.clone().into_tvalue(), scales.into_tvalue()])
                .unwrap()
                .unwrap();
            let got = Upsample2x
                .eval_out_of_plan(tvec![input.into_tvalue()])
                .unwrap()
                .unwrap();
            assert_eq!(
                got[0].shape(),
                [shape[0], shape[1], 2 * shape[2], 2 * shape[3]]
            );
            assert!(
                max_difference(&got[0], &want[0]) <= 1e-6,
                "{shape:?}: {}",
                max_difference(&got[0], &want[0])
            );
        }
    }

    #[test]
    fn channel_softmax_matches_tracts_softmax() {
        let softmax = Softmax::new(tvec![1], None, SoftmaxKind::Softmax);
        for shape in [[1, 18, 4, 9], [2, 3, 2, 2], [1, 1, 3, 3]] {
            let input = tensor(shape);
            let want = softmax
                .eval_out_of_plan(tvec![input.clone().into_tvalue()])
                .unwrap()
                .unwrap();
            let got = ChannelSoftmax
                .eval_out_of_plan(tvec![input.into_tvalue()])
                .unwrap()
                .unwrap();
            assert!(
                max_difference(&got[0], &want[0]) <= 1e-6,
                "{shape:?}: {}",
                max_difference(&got[0], &want[0])
            );
        }
    }

    #[test]
    fn only_matching_nodes_are_replaced() {
        // BatDetect2's graph: three bilinear doublings and the class softmax.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../models/batdetect2/batdetect2.onnx");
        let mut model = tract_onnx::onnx()
            .model_for_path(&path)
            .and_then(|m| m.with_input_fact(0, f32::fact([1, 1, 128, 64]).into()))
            .and_then(|m| m.into_typed())
            .and_then(|m| m.into_decluttered())
            .unwrap();
        assert_eq!(accelerate(&mut model).unwrap(), 4);
        assert_eq!(
            accelerate(&mut model).unwrap(),
            0,
            "a second pass finds nothing left to replace"
        );
        // A softmax over the last axis (the attention's) is left to tract.
        let mut other = TypedModel::default();
        let x = other.add_source("x", f32::fact([1, 2, 3, 4])).unwrap();
        let y = other
            .wire_node(
                "softmax",
                Softmax::new(tvec![3], None, SoftmaxKind::Softmax),
                &[x],
            )
            .unwrap();
        other.select_output_outlets(&y).unwrap();
        assert_eq!(accelerate(&mut other).unwrap(), 0);
    }
}
