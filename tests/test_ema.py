"""EMA of weights and BN statistics: the closed-form formula, wrappers, warm-up and checkpoint round trip."""

from __future__ import annotations

import io

import pytest
import torch

from fcnlab.training.ema import ModelEma, ema_decay_at


def _toy() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(2)
    )


def _train_steps(
    model: torch.nn.Module, ema: ModelEma | None, k: int, seed: int = 1, ema_from: torch.nn.Module | None = None
) -> list[dict]:
    """k SGD steps; returns the model's state after each step (what the EMA saw, updated from ``ema_from``)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    model.train()
    for _ in range(k):
        x = torch.randn(8, 3, 6, 6, generator=gen)
        loss = model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if ema is not None:
            ema.update(ema_from if ema_from is not None else model)
        seen.append({n: t.detach().clone() for n, t in model.state_dict().items()})
    return seen


def _closed_form(seen: list[dict], decay: float, warmup: bool) -> dict[str, torch.Tensor]:
    """ema_1 = w_1; ema_t = d_t ema_{t-1} + (1 - d_t) w_t, written out as a weighted sum of the w_t."""
    k = len(seen)
    weights = []
    for t in range(1, k + 1):  # weight of w_t in ema_k
        w = 1.0 if t == 1 else 1.0 - ema_decay_at(t, decay, warmup)
        for s in range(t + 1, k + 1):
            w *= ema_decay_at(s, decay, warmup)
        weights.append(w)
    return {
        n: sum(w * s[n].double() for w, s in zip(weights, seen, strict=True))
        for n in seen[0]
        if seen[0][n].is_floating_point()
    }


@pytest.mark.parametrize("warmup", [False, True])
def test_ema_matches_closed_form_weights_and_buffers(warmup):
    model = _toy()
    model(torch.zeros(1, 3, 6, 6))  # materialise the lazy layer
    ema = ModelEma(model, decay=0.8, warmup=warmup)
    seen = _train_steps(model, ema, k=5)
    expect = _closed_form(seen, 0.8, warmup)
    got = ema.module.state_dict()
    assert "1.running_mean" in expect and "1.running_var" in expect  # BN statistics are averaged too
    for name, value in expect.items():
        torch.testing.assert_close(got[name].double(), value, rtol=1e-5, atol=1e-6, msg=name)
    # the average differs from the last weights (the test would pass trivially with decay 0)
    assert not torch.allclose(got["0.weight"], seen[-1]["0.weight"])
    assert ema.updates == 5


def test_warmup_decay_grows_to_the_target():
    assert ema_decay_at(1, 0.999, True) == pytest.approx(2 / 11)
    assert ema_decay_at(10_000, 0.999, True) == 0.999
    assert ema_decay_at(1, 0.999, False) == 0.999


@pytest.mark.slow
def test_wrapped_model_averages_the_inner_module():
    model = _toy()
    model(torch.zeros(1, 3, 6, 6))

    class Wrapper(torch.nn.Module):  # the shape of DDP: the user model is .module
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, x):
            return self.module(x)

    # torch.compile returns its wrapper at once (compiling happens at the first call, which never comes)
    wrapped = Wrapper(torch.compile(model))
    ema = ModelEma(wrapped, decay=0.5)
    assert set(ema.module.state_dict()) == set(model.state_dict())  # same keys as the checkpoint's model
    assert type(ema.module) is type(model)
    seen = _train_steps(model, ema, k=3, ema_from=wrapped)  # EMA updated via the wrapper
    torch.testing.assert_close(ema.module.state_dict()["0.weight"].double(), _closed_form(seen, 0.5, False)["0.weight"])
    assert all(not p.requires_grad for p in ema.module.parameters())


def test_resume_round_trip_equals_uninterrupted():
    def fresh():
        m = _toy()
        m(torch.zeros(1, 3, 6, 6))
        return m

    # uninterrupted: 6 updates
    a = fresh()
    ema_a = ModelEma(a, decay=0.7, warmup=True)
    _train_steps(a, ema_a, k=3, seed=1)
    _train_steps(a, ema_a, k=3, seed=2)
    # interrupted after 3, saved through torch.save / weights_only load, resumed into a fresh EMA
    b = fresh()
    ema_b = ModelEma(b, decay=0.7, warmup=True)
    _train_steps(b, ema_b, k=3, seed=1)
    buf = io.BytesIO()
    torch.save({"model": b.state_dict(), "ema": ema_b.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    c = fresh()
    c.load_state_dict(ckpt["model"])
    ema_c = ModelEma(c, decay=0.7, warmup=True)
    ema_c.load_state_dict(ckpt["ema"])
    assert ema_c.updates == 3
    _train_steps(c, ema_c, k=3, seed=2)
    for name, value in ema_a.module.state_dict().items():
        assert torch.equal(ema_c.module.state_dict()[name], value), name


def test_bad_decay_is_refused():
    with pytest.raises(ValueError, match="decay"):
        ModelEma(torch.nn.Linear(2, 2), decay=1.5)


def test_update_equals_the_library_averaged_model():
    """Without warm-up the update is AveragedModel.update_parameters with get_ema_multi_avg_fn, bit for bit."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    model = _toy()
    model(torch.zeros(1, 3, 6, 6))
    ema = ModelEma(model, decay=0.8)
    library = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.8), use_buffers=True)

    class Both:
        def update(self, m):
            ema.update(m)
            library.update_parameters(m)

    _train_steps(model, Both(), k=4)
    for name, value in library.module.state_dict().items():
        if value.is_floating_point():
            assert torch.equal(ema.module.state_dict()[name], value), name
    assert int(library.n_averaged) == ema.updates == int(ema.averaged.n_averaged) == 4
