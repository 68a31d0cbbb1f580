"""The PyTorch bridge: a torch module exported to ONNX in memory and loaded (torch is imported only here)."""
import io

from ._net import load


def from_torch(module, example_input, opset=13):
    """module (a torch.nn.Module) traced on example_input (a tensor of the input's shape, batch 1) by
    torch.onnx.export into memory, in eval mode, and loaded as a netmoments.Net."""
    try:
        import torch
    except ImportError as e:
        raise ImportError("netmoments.from_torch needs PyTorch (Debian: apt install python3-torch)") from e
    buf = io.BytesIO()
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            torch.onnx.export(module, example_input, buf, opset_version=int(opset), input_names=["x"], output_names=["y"],
                              do_constant_folding=True)
    finally:
        module.train(was_training)
    return load(buf.getvalue())
