"""A trained model from a file, analysed as it is: `xai.load_model(path)` and `classifier=file`.

Formats, and what each allows:
- a state dict with the class to build (`network`): every explainer applies;
- TorchScript (`torch.jit.save`) and torch.export programs (`torch.export.save`, .pt2): differentiable, but
  compiled, so the methods that hook into layers (DeepLIFT, DeepSHAP, Grad-CAM) are skipped with the reason;
- a Lightning `.ckpt`, rebuilt by `load_from_checkpoint` on the LightningModule class given as `network`;
- a scikit-learn estimator saved with skops (`skops.io.dump`): no code runs on load; types skops does not
  trust by default are refused unless named in `trust`; model-agnostic methods only;
- ONNX through onnxruntime: model-agnostic methods only (xai sees no gradients through it);
- a pickle or joblib file only with `trust=True`, since loading one runs whatever code it holds.

The input contract is declared, not guessed: channels, image size, number of classes and class names, when
given, are compared with the dataset's before anything runs; normalisation (`mean`, `std` per channel) is
applied inside the wrapper, so analyses and explanations stay in the dataset's [0, 1] pixel space. A file
model is never retrained: its identity, which keys whatever is learned against it (a GAN, an actor), is the
file's sha256 with the settings that change what it computes.
"""

from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from xai_cli.errors import UserError, first_line
from xai_cli.models.adapters import EstimatorClassifier, Outputs, TorchModuleClassifier
from xai_cli.utils.hashing import file_sha256

Format = Literal["auto", "torchscript", "exported", "state_dict", "lightning", "skops", "onnx", "pickle"]
FORMATS: tuple[str, ...] = ("torchscript", "exported", "state_dict", "lightning", "skops", "onnx", "pickle")
_BY_SUFFIX = {".pt2": "exported", ".ckpt": "lightning", ".skops": "skops", ".onnx": "onnx", ".pkl": "pickle",
              ".pickle": "pickle", ".joblib": "pickle"}


@dataclass(frozen=True)
class InputContract:
    """What a model expects and returns, as its owner declares it; None: not declared (then only the
    probe on real inputs checks it)."""

    channels: int | None = None
    image_size: tuple[int, int] | None = None
    num_classes: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    class_names: tuple[str, ...] | None = None

    @classmethod
    def of(cls, channels: int | None = None, image_size: int | Sequence[int] | None = None,
           num_classes: int | None = None, mean: float | Sequence[float] | None = None,
           std: float | Sequence[float] | None = None, class_names: Sequence[str] | None = None) -> "InputContract":
        def floats(v: float | Sequence[float] | None, what: str) -> tuple[float, ...] | None:
            if v is None:
                return None
            out = tuple(float(a) for a in (v if isinstance(v, Sequence) else [v]))
            if what == "std" and any(a <= 0 for a in out):
                raise UserError(f"std must be positive, got {list(out)}")
            return out

        size = None if image_size is None else (
            (int(image_size), int(image_size)) if isinstance(image_size, (int, float)) else
            tuple(int(a) for a in image_size))  # type: ignore[union-attr]
        if size is not None and len(size) != 2:
            raise UserError(f"image_size must be one number or [height, width], got {list(size)}")
        contract = cls(None if channels is None else int(channels), size,  # type: ignore[arg-type]
                       None if num_classes is None else int(num_classes), floats(mean, "mean"), floats(std, "std"),
                       None if class_names is None else tuple(str(c) for c in class_names))
        if contract.num_classes is not None and contract.class_names is not None \
                and len(contract.class_names) != contract.num_classes:
            raise UserError(f"class_names has {len(contract.class_names)} names for num_classes "
                            f"{contract.num_classes}")
        for what, values in (("mean", contract.mean), ("std", contract.std)):
            if values is not None and contract.channels is not None and len(values) not in (1, contract.channels):
                raise UserError(f"{what} has {len(values)} values for {contract.channels} channels")
        return contract

    def check(self, name: str, input_shape: Sequence[int], num_classes: int,
              class_names: Sequence[str] | None = None) -> None:
        """One line if what is declared is not what the dataset has."""
        shape = tuple(int(s) for s in input_shape)
        if (self.channels is not None or self.image_size is not None) and len(shape) != 3:
            raise UserError(f"{name} takes images, the dataset has inputs of shape {shape}")
        if self.channels is not None and self.channels != shape[0]:
            raise UserError(f"{name} takes {self.channels}-channel images, the dataset has {shape[0]} "
                            f"(dataset.channels={self.channels} converts it, where the dataset offers it)")
        if self.image_size is not None and self.image_size != shape[1:]:
            h, w = self.image_size
            raise UserError(f"{name} takes {h}x{w} images, the dataset has {shape[1]}x{shape[2]} "
                            f"(dataset.image_size={h} resizes it, where the dataset offers it)")
        if self.num_classes is not None and self.num_classes != int(num_classes):
            raise UserError(f"{name} outputs {self.num_classes} classes, dataset has {num_classes}")
        for what, values in (("mean", self.mean), ("std", self.std)):
            if values is not None and len(shape) == 3 and len(values) not in (1, shape[0]):
                raise UserError(f"{name}: {what} has {len(values)} values for the dataset's {shape[0]} channels")
        names = [str(c) for c in class_names] if class_names else None
        numbered = names == [str(i) for i in range(int(num_classes))]
        if self.class_names is not None and names is not None and not numbered and list(self.class_names) != names:
            raise UserError(f"{name}'s classes ({', '.join(self.class_names)}) are not the dataset's "
                            f"({', '.join(names)}), in that order")

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std per channel of (N, C, ...) inputs; unchanged where nothing is declared."""
        if self.mean is None and self.std is None:
            return x
        shape = (1, -1) + (1,) * (x.ndim - 2)
        if self.mean is not None:
            x = x - torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        if self.std is not None:
            x = x / torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
        return x


class FileModel:
    """What every model from a file has: where it came from, its identity, its declared contract."""

    path: Path
    format: str
    sha256: str
    contract: InputContract
    identity: str

    def _describe_file(self, path: Path, fmt: str, sha256: str, extra: Any) -> None:
        self.path, self.format, self.sha256 = path, fmt, sha256
        self.identity = hashlib.sha256(json.dumps({"sha256": sha256, "format": fmt, "contract": asdict(self.contract),
                                                   "extra": extra}, sort_keys=True, default=str).encode()).hexdigest()

    def file_info(self) -> dict[str, Any]:
        """What reports say about the file."""
        return {"file": str(self.path), "format": self.format, "sha256": self.sha256}


class FileNetwork(FileModel, TorchModuleClassifier):
    """A torch network from a file, with the declared normalisation in front of it."""

    def __init__(self, module: nn.Module, outputs: Outputs, contract: InputContract) -> None:
        TorchModuleClassifier.__init__(self, module, outputs)
        self.contract = contract

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.contract.normalise(x))


class FileEstimator(FileModel, EstimatorClassifier):
    """A scikit-learn estimator from a file, on flattened (normalised) inputs."""

    def __init__(self, estimator: Any, contract: InputContract) -> None:
        EstimatorClassifier.__init__(self, estimator)
        self.contract = contract

    def predict_proba(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        return super().predict_proba(self.contract.normalise(torch.as_tensor(x, dtype=torch.float32)))


class OnnxClassifier(FileModel):
    """An ONNX graph run by onnxruntime on the CPU; it gives predictions only (model-agnostic methods)."""

    def __init__(self, path: Path, outputs: Outputs, contract: InputContract, batch_size: int = 256) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("ONNX models need onnxruntime: pip install onnxruntime") from None
        options = ort.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers are not the user's concern
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise UserError(f"{path.name} is not an ONNX model onnxruntime can run: {_first_line(exc)}") from None
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.declared_shape = tuple(d if isinstance(d, int) else None for d in first.shape)
        # a graph exported for a fixed batch size is fed exactly that many rows at a time (the last padded)
        fixed = self.declared_shape[0] if self.declared_shape else None
        self.fixed_batch = fixed is not None
        self.batch_size = int(fixed) if fixed else int(batch_size)
        self.outputs = outputs
        self.contract = contract

    def predict_proba(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        a = torch.as_tensor(x, dtype=torch.float32)
        a = self.contract.normalise(a).cpu().numpy()
        out = []
        for i in range(0, len(a), self.batch_size):
            chunk = a[i : i + self.batch_size]
            pad = self.batch_size - len(chunk) if self.fixed_batch else 0
            if pad:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
            y = np.asarray(self.session.run(None, {self.input_name: chunk})[0], dtype=np.float32)
            out.append(y[: len(y) - pad] if pad else y)
        scores = np.concatenate(out) if out else np.zeros((0, 0), np.float32)
        if self.outputs == "probabilities" or scores.ndim != 2:
            return scores
        scores = np.exp(scores - scores.max(1, keepdims=True))
        return scores / scores.sum(1, keepdims=True)

    def num_parameters(self) -> int:
        import onnx

        graph = onnx.load(str(self.path), load_external_data=False).graph
        return int(sum(np.prod(t.dims) for t in graph.initializer))


def load_model(path: str | Path, *, format: Format = "auto", network: Any = None, outputs: Outputs = "logits",
               channels: int | None = None, image_size: int | Sequence[int] | None = None,
               num_classes: int | None = None, mean: float | Sequence[float] | None = None,
               std: float | Sequence[float] | None = None, class_names: Sequence[str] | None = None,
               trust: bool | Sequence[str] = False) -> FileModel:
    """A trained classifier from a file, ready for every analysis (and never retrained by xai).

    Args:
        path: the file.
        format: "auto" (by suffix and content: .ckpt Lightning, .skops, .onnx, .pkl/.joblib pickle; a .pt
            or .pth holding TorchScript, else a state dict), or one of torchscript, state_dict, lightning,
            skops, onnx, pickle.
        network: for a state dict, the network to load it into (an nn.Module, its class, its import
            path, or a config such as `{"_target_": "torchvision.models.resnet18", "num_classes": 3}`);
            for a Lightning checkpoint, the LightningModule class (or its import path).
        outputs: what a network returns, "logits" or "probabilities".
        channels, image_size, num_classes, class_names: the declared contract, checked against the
            dataset before an analysis starts (each optional; a probe on real inputs checks the rest).
        mean, std: per-channel normalisation the network was trained with; applied inside the wrapper, so
            the analyses see [0, 1] pixels.
        trust: skops: True, or the names of types to trust beyond skops's defaults; pickle: True is the
            only way to load one (loading a pickle runs the code it holds). Lightning checkpoints holding
            objects torch's safe loader refuses need True too.

    Returns:
        A classifier for `xai.explain`, `xai.discrepancy`, `xai.counterfactual`, `xai.uncertainty`, ...

    Example:
        >>> import xai_cli as xai
        >>> net = xai.load_model("net.pt", channels=1, image_size=28, num_classes=10)  # doctest: +SKIP
        >>> xai.explain({"net": net}, "digits", explainers=["saliency"])  # doctest: +SKIP
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"model file {file} does not exist" if not file.exists() else f"{file} is not a file")
    fmt = _format_of(file) if format == "auto" else format
    if fmt not in FORMATS:
        raise UserError(f"unknown model format {format!r}; valid: auto, {', '.join(FORMATS)}")
    if outputs not in ("logits", "probabilities"):
        raise UserError(f"outputs must be 'logits' or 'probabilities', not {outputs!r}")
    contract = InputContract.of(channels, image_size, num_classes, mean, std, class_names)
    digest = file_sha256(file)
    model: FileModel
    extra: Any = None
    if fmt == "onnx":
        model = OnnxClassifier(file, outputs, contract)
        model.contract = _onnx_contract(file, model.declared_shape, contract)
        extra = outputs
    elif fmt in ("skops", "pickle"):
        model = FileEstimator(_load_estimator(file, fmt, trust), contract)
    else:
        module = {"torchscript": _load_torchscript, "exported": _load_exported, "state_dict": _load_state_dict,
                  "lightning": _load_lightning}[fmt](file, network, trust)
        model = FileNetwork(module, outputs, contract).eval()
        # a state dict's weights mean something only with the class they are loaded into
        extra = {"outputs": outputs, "network": _class_path(module) if fmt in ("state_dict", "lightning") else None}
    model._describe_file(file.resolve(), fmt, digest, extra)
    return model


# --- formats ------------------------------------------------------------------------------------------
def _format_of(file: Path) -> str:
    by_suffix = _BY_SUFFIX.get(file.suffix.lower())
    if by_suffix:
        return by_suffix
    # torch.jit.save and torch.save both write zip archives; only TorchScript's holds compiled code
    if zipfile.is_zipfile(file):
        with zipfile.ZipFile(file) as archive:
            if any("/code/" in n or n.endswith("constants.pkl") for n in archive.namelist()):
                return "torchscript"
    return "state_dict"


def _load_torchscript(file: Path, network: Any, trust: Any) -> nn.Module:
    try:
        with warnings.catch_warnings():  # torch deprecates TorchScript; the user's file is what it is
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(file), map_location="cpu")
    except Exception as exc:
        raise UserError(f"{file.name} is not a TorchScript archive torch can load: {_first_line(exc)}") from None


class _ExportedGraph(nn.Module):
    """A torch.export program's module: its train/eval behaviour was fixed when it was exported, and torch
    refuses to switch it, so switching the wrapper's mode leaves it alone."""

    def __init__(self, graph: nn.Module) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x)

    def train(self, mode: bool = True) -> "_ExportedGraph":
        self.training = mode
        return self


def _load_exported(file: Path, network: Any, trust: Any) -> nn.Module:
    try:
        return _ExportedGraph(torch.export.load(str(file)).module())
    except Exception as exc:
        raise UserError(f"{file.name} is not a torch.export program torch can load: {_first_line(exc)}") from None


def _load_state_dict(file: Path, network: Any, trust: Any) -> nn.Module:
    if network is None:
        raise UserError(f"{file.name} holds weights only: give the network to load them into (network=mypkg.Net "
                        "in Python; classifier.network=mypkg.Net, or with arguments "
                        "'classifier.network={_target_:mypkg.Net,width:64}', on the command line)")
    module = _network(network)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"{file.name} is not a torch state dict torch loads safely: {_first_line(exc)}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint that keeps the weights under "state_dict"
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{file.name} does not hold a state dict (a mapping of names to tensors)")
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"{file.name}'s weights do not fit {_class_path(module)}: "
                        f"{_mismatch(module, state)}") from exc
    return module


def _load_lightning(file: Path, network: Any, trust: Any) -> nn.Module:
    import lightning.pytorch as L

    if network is None:
        raise UserError(f"{file.name} is a Lightning checkpoint: give its LightningModule class (network=mypkg.LitNet "
                        "in Python; classifier.network=mypkg.LitNet on the command line)")
    cls = _class(network)
    if not (isinstance(cls, type) and issubclass(cls, L.LightningModule)):
        raise UserError(f"{_name(network)} is not a LightningModule class: load_from_checkpoint needs one")
    try:
        return cls.load_from_checkpoint(file, map_location="cpu", weights_only=trust is not True)
    except Exception as exc:
        hint = "; if you trust the file, trust=True loads it with pickle" if trust is not True else ""
        raise UserError(f"{file.name} cannot be loaded into {cls.__name__}: {_first_line(exc)}{hint}") from None


def _load_estimator(file: Path, fmt: str, trust: bool | Sequence[str]) -> Any:
    if fmt == "pickle":
        if trust is not True:
            raise UserError(f"{file.name} is a pickle: loading it runs whatever code it holds. Save the model with "
                            "skops (skops.io.dump) instead, or, if you trust the file, set trust=true")
        import joblib

        estimator = joblib.load(file)
    else:
        import skops.io as sio

        try:
            untrusted = sio.get_untrusted_types(file=file)
        except Exception as exc:
            raise UserError(f"{file.name} is not a skops file: {_first_line(exc)}") from None
        trusted = untrusted if trust is True else [str(t) for t in (trust or [])]
        refused = [t for t in untrusted if t not in trusted]
        if refused:
            raise UserError(f"{file.name} holds types skops does not trust by default: {', '.join(refused)}; if you "
                            f"trust them, list them: trust=[{','.join(refused)}]")
        estimator = sio.load(file, trusted=trusted)
    if not hasattr(estimator, "predict_proba"):
        raise UserError(f"{file.name} holds a {type(estimator).__name__}, which has no predict_proba: xai needs "
                        "class probabilities")
    return estimator


def _onnx_contract(file: Path, declared: tuple[int | None, ...], contract: InputContract) -> InputContract:
    """An ONNX graph declares its input shape itself: what the user declared must agree with it, and what
    they left open is taken from it."""
    if len(declared) != 4:
        return contract
    channels, h, w = declared[1:]
    if contract.channels is not None and channels is not None and channels != contract.channels:
        raise UserError(f"{file.name} takes {channels}-channel inputs, not {contract.channels} as declared")
    size = (h, w) if h is not None and w is not None else None
    if contract.image_size is not None and size is not None and size != contract.image_size:
        raise UserError(f"{file.name} takes {h}x{w} inputs, not {contract.image_size[0]}x{contract.image_size[1]} "
                        "as declared")
    return replace(contract, channels=contract.channels if channels is None else channels,
                   image_size=contract.image_size or size)


# --- helpers ------------------------------------------------------------------------------------------
def _class(network: Any) -> Any:
    if isinstance(network, str):
        from hydra.utils import get_class

        try:
            return get_class(network)
        except Exception:
            raise UserError(f"cannot import {network}: give the class's full import path, e.g. mypkg.nets.Net") from None
    return network


def _network(network: Any) -> nn.Module:
    """An nn.Module from an instance, a class (built without arguments), an import path, or a config
    `{"_target_": "torchvision.models.resnet18", "num_classes": 3}` (what the command line's
    `classifier.network={_target_:...}` is, before Hydra builds it)."""
    if isinstance(network, Mapping) and "_target_" in network:
        from hydra.utils import instantiate

        try:
            network = instantiate(dict(network))
        except Exception as exc:
            cause = exc.__cause__ or exc  # instantiate's wrapper names only the target
            raise UserError(f"cannot build network {network['_target_']}: {_first_line(cause)}") from None
    built = _class(network)
    if isinstance(built, type):
        try:
            built = built()
        except TypeError as exc:
            raise UserError(f"{built.__name__}() needs arguments ({_first_line(exc)}): give an instance, or "
                            f"'classifier.network={{_target_:{_name(network)},...}}' on the command line") from None
    if not isinstance(built, nn.Module):
        raise UserError(f"network must be a torch.nn.Module, its class or its import path, not {_name(network)}")
    return built


def _class_path(module: nn.Module) -> str:
    return f"{type(module).__module__}.{type(module).__qualname__}"


def _name(obj: Any) -> str:
    return obj if isinstance(obj, str) else getattr(obj, "__name__", type(obj).__name__)


def _mismatch(module: nn.Module, state: dict[str, torch.Tensor]) -> str:
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    parts = [f"missing {', '.join(missing[:3])}" if missing else "",
             f"unexpected {', '.join(unexpected[:3])}" if unexpected else "",
             f"shapes differ: {', '.join(shapes[:2])}" if shapes else ""]
    return "; ".join(p for p in parts if p) or "load_state_dict refused them"


def _first_line(exc: BaseException) -> str:
    return first_line(exc) or type(exc).__name__
