import torch

from noise2score.score_loss import SigmaASchedule, ardae_loss


def test_ramp_is_a_pure_function_of_step():
    s = SigmaASchedule(start=0.05, end=0.001, steps=100)
    assert s.level(0) == 0.05 and abs(s.level(100) - 0.001) < 1e-12 and s.level(10_000) == s.level(100)
    assert abs(s.level(50) - 0.0255) < 1e-12
    assert torch.equal(s.draw(37, 4), SigmaASchedule(0.05, 0.001, 100).draw(37, 4))
    assert s.draw(37, 4).shape == (4, 1, 1, 1)


def test_gaussian_kind_draws_signed_per_sample_values():
    s = SigmaASchedule(start=0.1, end=0.1, steps=1, kind="gaussian")
    draw = s.draw(0, 4000, generator=torch.Generator().manual_seed(0))
    assert (draw < 0).any() and (draw > 0).any()
    assert abs(draw.std().item() - 0.1) < 0.01


class Linear(torch.nn.Module):
    """R(y) = w * y + b: the family that holds the exact score of a Gaussian."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.b = torch.nn.Parameter(torch.zeros(()))

    def forward(self, y):
        return self.w * y + self.b


def _fit(antithetic: bool) -> Linear:
    # y ~ N(m, s^2): the score of y smoothed by N(0, a^2) is -(y - m) / (s^2 + a^2).
    torch.manual_seed(0)
    m, s, a = 0.3, 0.2, 0.05
    y = m + s * torch.randn(4096, 1, 1, 1)
    model = Linear()
    opt = torch.optim.Adam(model.parameters(), lr=0.5)
    for _ in range(400):
        opt.zero_grad()
        ardae_loss(model, y, torch.tensor(a), antithetic=antithetic).backward()
        opt.step()
    return model


def test_ardae_recovers_known_score():
    expected_w = -1 / (0.2**2 + 0.05**2)
    for antithetic in (False, True):
        model = _fit(antithetic)
        assert abs(model.w.item() / expected_w - 1) < 0.1, (antithetic, model.w.item())
        assert abs(model.b.item() - 0.3 * -expected_w) < 0.1 * 0.3 * -expected_w


def test_loss_does_not_modify_inputs():
    y = torch.rand(2, 1, 8, 8)
    before = y.clone()
    ardae_loss(lambda t: t * 2, y, torch.full((2, 1, 1, 1), 0.1), antithetic=True)
    assert torch.equal(y, before)
