"""Where the config tree lives, and composing it outside a Hydra run (the Python API, tests).

The CLI runs under `@hydra.main` (run directories, multirun); the Python API only needs the composed
settings, which Hydra's compose API gives. Both read the same YAML, so a model asked for by name from
Python has the same config, and hence the same store entry, as the CLI's.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, ListConfig, OmegaConf


def _config_dir() -> Path:
    packaged = Path(__file__).parent / "configs"  # inside a built wheel
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "configs"


CONFIG_DIR = _config_dir()

# Set groups: `classifiers=[cnn,svm_rbf]` selects options of the single group `classifier`, each under its
# own key (classifiers.cnn, classifiers.svm_rbf); `explainers` and counterfactual `methods` likewise. Hydra
# merges every option of a list into one package, so each option needs an entry that places it under its
# key; they are registered here, one per option file, instead of an include file per option: adding a
# classifier, an explainer or a method is one YAML file.
SET_GROUPS = {"classifiers": "classifier", "explainers": "explainer", "methods": "counterfactual_method"}

# The classifier and the conditional GAN `xai uncertainty` uses unless told otherwise, by the kind of input
# (`data_kind`): a dataset needs no file of its own to get them.
SUITED = {
    "points": {"classifier": "mlp", "generator": "mlp_gan"},
    "images": {"classifier": "cnn", "generator": "stylegan2_lite"},  # up to 32 px: stylegan2_lite's networks
    "large_images": {"classifier": "cnn", "generator": "mlp_gan_images"},
}


def group_options(group: str) -> list[str]:
    """The options of a config group, e.g. group_options("explainer") -> ["deep_shap", ...]."""
    return sorted(p.stem for p in (CONFIG_DIR / SET_GROUPS.get(group, group)).glob("*.yaml"))


def data_kind(input_shape: Sequence[int]) -> str:
    """"points" for feature vectors, "images" up to 32 px, "large_images" above."""
    if len(input_shape) != 3:
        return "points"
    return "images" if max(int(input_shape[1]), int(input_shape[2])) <= 32 else "large_images"


def suited(group: str, dataset: str) -> str:
    """The `group` option that suits the dataset option `dataset`, judged by its input shape as its file
    declares it (settings given on the command line, e.g. dataset.image_size=64, are not seen here: Hydra
    chooses options before it reads values). Used in the defaults list as `${xai.suited:generator,${dataset}}`."""
    return SUITED[data_kind(_declared_shape(dataset))][group]


@functools.lru_cache(maxsize=None)
def _declared_shape(dataset: str) -> tuple[int, ...]:
    """The input shape a dataset option's file declares, read once per process (every uncertainty
    composition asks twice: for the classifier and for the generator)."""
    path = CONFIG_DIR / "dataset" / f"{dataset}.yaml"
    if not path.is_file():
        return (1, 28, 28)  # a dataset from another config dir: assume small images
    declared = OmegaConf.load(path).get("input_shape")
    if not isinstance(declared, ListConfig):
        return (1, 28, 28)
    # relative interpolations (${..image_size}) resolve within the file
    return tuple(int(v) for v in OmegaConf.to_container(declared, resolve=True))  # type: ignore[union-attr]


def _register() -> None:
    from xai_cli.data import classes

    resolvers = {"xai.suited": suited, "xai.folder_classes": classes.folder_classes,
                 "xai.npz_classes": classes.npz_classes, "xai.count": classes.count}
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
    store = ConfigStore.instance()
    for set_group, group in SET_GROUPS.items():
        for option in group_options(group):
            store.store(group=set_group, name=option, node={"defaults": [{f"/{group}@{option}": option}]},
                        provider="xai")


_register()


def compose(command: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The composed (unresolved) config of `command` with Hydra overrides, as the CLI would build it.

    Works inside another Hydra app too: Hydra's global state is put back as it was found.
    """
    global_hydra = GlobalHydra.instance()
    outer = global_hydra.hydra if global_hydra.is_initialized() else None
    global_hydra.clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3", job_name=command):
            return hydra_compose(config_name=command, overrides=list(overrides))
    finally:
        global_hydra.clear()
        if outer is not None:
            global_hydra.initialize(outer)
