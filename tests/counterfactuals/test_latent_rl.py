"""The learned latent actor: trained briefly on digits against a classifier it only queries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from tests.conftest import compose_config
from xai_cli.counterfactuals.latent_rl import LatentActor, LatentRLFit
from xai_cli.training.store import ModelStore

pytestmark = pytest.mark.slow


class QueryOnly:
    """Hides everything of a classifier but predict_proba, and counts the images it was asked about."""

    def __init__(self, model: object) -> None:
        self._model, self.queries = model, 0

    def predict_proba(self, x: torch.Tensor) -> np.ndarray:
        self.queries += len(x)
        return self._model.predict_proba(x)  # type: ignore[attr-defined]


def test_a_briefly_trained_actor_beats_a_random_latent_edit(tmp_path: Path) -> None:
    cfg = compose_config("counterfactual", ["classifier=mlp", "generator.fit.min_train_images=0",
                                            "generator.fit.max_epochs=20"])
    data = instantiate(cfg.dataset)
    data.setup()
    store = ModelStore(tmp_path)
    classifier = store.get("mlp", cfg.classifier, data, cfg.dataset, cfg.trainer, 0).model
    vae = store.get("beta_vae", cfg.generator, data, cfg.dataset, cfg.trainer, 0).model
    black_box = QueryOnly(classifier)
    actor = LatentActor(vae.latent_dim, 10, hidden=128, max_step=3.0)
    result = LatentRLFit(steps=300, batch_size=64, hidden=128).fit(actor, data, cfg.trainer, 0, "test",
                                                                   classifier=black_box, vae=vae)
    assert result.details["classifier_queries"] == 300 * 64
    assert black_box.queries == 300 * 64 + len(data.split("train"))  # the edits, and one pass to label codes

    x = data.split("test").x[:200]
    probs = classifier.predict_proba(x)
    target = torch.from_numpy(np.argsort(-probs, axis=1)[:, 1].copy())
    with torch.no_grad():
        z = vae.encode(x)
        learned = vae.decode(z + actor(z, target))
        generator = torch.Generator().manual_seed(0)
        random_edit = actor.max_step * (2 * torch.rand(z.shape, generator=generator) - 1)
        random = vae.decode(z + random_edit)
    hit = lambda images: float((classifier.predict_proba(images).argmax(1) == target.numpy()).mean())  # noqa: E731
    assert hit(learned) >= 0.8 and hit(learned) > hit(random) + 0.4, (hit(learned), hit(random))
    # and it gets there with a smaller change than the random edit
    change = lambda images: float((images - vae.decode(z)).abs().mean())  # noqa: E731
    assert change(learned) < change(random)
