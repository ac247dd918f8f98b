"""Export a model folder (pruned, uneven heads included) to ONNX and check it against PyTorch.

    python -m workflow_scripts.tools.export_onnx models/sst2/auber/final model.onnx [--opset 17] [--atol 1e-4]

Inputs input_ids and attention_mask (both (batch, sequence), int64) with dynamic batch and sequence axes;
outputs are the tensors of the model's output (e.g. logits). Uses the TorchScript exporter (dynamo=False) and
eager attention, which trace cleanly through transformers 5's mask code. The check runs onnxruntime on inputs
of a different batch size and length than the export example, with padding, and fails if the max abs
difference reaches --atol.
"""

import argparse
import json
import os
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from workflow_scripts.core.surgery import load_pruned  # noqa: E402

INPUT_NAMES = ["input_ids", "attention_mask"]


class TensorOutputs(nn.Module):
    """Wraps a HF model so that forward(input_ids, attention_mask) returns a plain tuple of tensors."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        return tuple(v for v in outputs.values() if isinstance(v, torch.Tensor))


def example_inputs(vocab_size: int, batch_size: int, seq_len: int, seed: int) -> dict[str, torch.Tensor]:
    """Random ids and a mask whose last row is padded, so the masking path is traced and checked."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, vocab_size, (batch_size, seq_len), generator=generator)  # (B, T)
    attention_mask = torch.ones(batch_size, seq_len, dtype=torch.long)
    attention_mask[-1, seq_len // 2:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def output_names(model: nn.Module, inputs: dict) -> list[str]:
    with torch.no_grad():
        outputs = model(**inputs, return_dict=True)
    return [k for k, v in outputs.items() if isinstance(v, torch.Tensor)]


def export(model: nn.Module, onnx_path: Path, opset: int = 17) -> list[str]:
    """Write model to onnx_path; returns the output names."""
    model.eval()
    inputs = example_inputs(model.config.vocab_size, batch_size=2, seq_len=8, seed=0)
    names = output_names(model, inputs)
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    dynamic_axes.update({name: {0: "batch"} for name in names})  # sequence axis too where there is one
    for name, tensor in zip(names, TensorOutputs(model)(**inputs)):
        if tensor.dim() >= 2 and tensor.shape[1] == inputs["input_ids"].shape[1]:
            dynamic_axes[name][1] = "sequence"
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", (DeprecationWarning, torch.jit.TracerWarning))
        torch.onnx.export(TensorOutputs(model), (inputs["input_ids"], inputs["attention_mask"]), str(onnx_path),
                          input_names=INPUT_NAMES, output_names=names, dynamic_axes=dynamic_axes,
                          opset_version=opset, dynamo=False)
    return names


def verify(model: nn.Module, onnx_path: Path, names: list[str], batch_size: int = 3, seq_len: int = 13) -> dict:
    """Max abs difference per output between onnxruntime and PyTorch on fresh inputs of another shape."""
    import onnxruntime  # optional dependency: only needed here

    inputs = example_inputs(model.config.vocab_size, batch_size, seq_len, seed=1)
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_outputs = session.run(names, {k: v.numpy() for k, v in inputs.items()})
    with torch.no_grad():
        torch_outputs = TensorOutputs(model.eval())(**inputs)
    return {name: float((torch.from_numpy(onnx_output) - torch_output).abs().max())
            for name, onnx_output, torch_output in zip(names, onnx_outputs, torch_outputs)}


def export_and_verify(directory: Path, onnx_path: Path, opset: int = 17, atol: float = 1e-4) -> dict:
    model = load_pruned(directory, attn_implementation="eager")
    names = export(model, onnx_path, opset)
    max_abs_diff = verify(model, onnx_path, names)
    report = {"onnx": str(onnx_path), "outputs": names, "max_abs_diff": max_abs_diff, "atol": atol,
              "ok": all(d < atol for d in max_abs_diff.values())}
    if not report["ok"]:
        raise SystemExit(f"ONNX outputs differ from PyTorch: {json.dumps(report)}")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.tools.export_onnx", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path, help="Hugging Face model folder (pruned or not)")
    parser.add_argument("onnx_path", type=Path, help="where to write the .onnx file")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset version")
    parser.add_argument("--atol", type=float, default=1e-4, help="max abs difference allowed vs PyTorch")
    args = parser.parse_args(argv)
    print(json.dumps(export_and_verify(args.directory, args.onnx_path, args.opset, args.atol), indent=2))


if __name__ == "__main__":
    main()
