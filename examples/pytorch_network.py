"""The reference's LSTMNetwork(10, 20, 2) + Linear(20, 1) as an nngraph gModule, trained on MSE.

The reference (a PyTorch course) defines

    class LSTMNetwork(nn.Module):                  # input_size 10, hidden 20, 2 layers, output 1
        def forward(self, x):
            out, _ = self.lstm(x, (h0, c0))
            return self.fc(out[:, -1, :])

prints it, and takes one Adam step (lr 0.01) on the MSE between its output for a random
sequence of 5 steps and the target 1.0. Here the same network is a graph:

    x (batch, 5, 10) -> LSTM(10 -> 20, 2 layers) -> outputs[:, -1] -> Linear(20 -> 1)

printed the reference's way and the Torch way, then trained for --steps Adam steps (1, as the reference).
With PyTorch installed, the same weights are loaded into the reference's PyTorch module and the two
losses are compared before and after the step.

The reference's own code does not run as printed: it passes one unbatched (5, 10) sequence with 3-D
zero states, which PyTorch refuses ("For unbatched 2-D input, hx and cx should also be 2-D"),
and ``out[:, -1, :]`` of its time-major output picks the last sequence, not the last step. We
run what it means: a batch of one sequence of 5 steps, batch first, classified at its last step.

Examples:
  python examples/pytorch_network.py               # one step, as the reference
  python examples/pytorch_network.py --steps 50    # keep going: the loss falls to ~0

Outputs (in --out): checkpoint.npz, metrics.json, loss.png (with --steps > 1).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import common  # examples/common.py: flags, device, the command line's training exits, plots
from lstm import LSTM, to_torch_state_dict
from nngraph_py import nn, optim, to_device, to_numpy, train
from nngraph_py.backend import manual_seed
from nngraph_py.nn.select import Select

NAME = "pytorch_network"
INPUT_SIZE, HIDDEN_SIZE, NUM_LAYERS, OUTPUT_SIZE = 10, 20, 2, 1   # the reference's sizes
SEQ_LEN = 5


def parse_args(argv: list[str] | None) -> object:
    parser = common.make_parser(NAME, __doc__)
    parser.add_argument("--steps", type=common.positive_int, default=1,
                        help="Adam steps on the one sequence (default: %(default)s, as the "
                             "reference)")
    parser.add_argument("--lr", type=common.positive_float, default=0.01,
                        help="Adam's learning rate (default: %(default)s)")
    parser.add_argument("--no-torch", action="store_true",
                        help="skip the comparison with PyTorch even when it is installed")
    args = parser.parse_args(argv)
    args = common.finish_args(parser, argv, args)
    args.out = args.out or common.default_out(NAME)
    return args


def build_model() -> nn.gModule:
    """LSTMNetwork as a graph: the nodes are named after the reference's attributes."""
    x = nn.Identity()().annotate(name="x")
    lstm = LSTM(INPUT_SIZE, HIDDEN_SIZE, NUM_LAYERS)(x).annotate(name="lstm")
    out = nn.SelectTable(0)(lstm)                                  # out, _ = self.lstm(x, ...)
    last = Select(1, -1)(out).annotate(name="last_step")          # out[:, -1, :]
    y = nn.Linear(HIDDEN_SIZE, OUTPUT_SIZE)(last).annotate(name="fc")
    return nn.gModule([x], [y])


def seed_style_repr(model: nn.gModule) -> str:
    """The model printed as the reference prints its PyTorch module."""
    modules = dict(model.named_children())  # by node name
    lstm, fc = modules["lstm"], modules["fc"]
    return ("LSTMNetwork(\n"
            f"  (lstm): LSTM({lstm.input_size}, {lstm.hidden_size}, {lstm.num_layers})\n"
            f"  (fc): Linear(in_features={fc.in_features}, out_features={fc.out_features}, "
            f"bias={fc.has_bias})\n)")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = common.select_device(args.device)
    manual_seed(args.seed)

    model = build_model().to(device)
    print(seed_style_repr(model))
    print(model)

    # The reference's data: one random sequence and the target 1.0.
    rng = np.random.default_rng(args.seed)
    x_host = rng.standard_normal((1, SEQ_LEN, INPUT_SIZE)).astype(np.float32)
    target_host = np.ones((1, OUTPUT_SIZE), dtype=np.float32)
    x, target = to_device(x_host, device), to_device(target_host, device)

    criterion = nn.MSECriterion().to(device)
    optimizer = optim.Adam(model, lr=args.lr)
    torch_side = None if args.no_torch else TorchTwin.create(model, args.lr)
    if args.resume:
        common.checkpoint_meta(args.resume)  # a missing file ends here, with its name
        train.load_run(args.resume, model, optimizer, args.seed)  # for "Loss:" below; fit
        if torch_side is not None:                                # loads it again to resume
            print("(the PyTorch comparison is skipped when resuming: its optimizer state is "
                  "not in the checkpoint)")
            torch_side = None
    checkpoint = args.out / "checkpoint.npz"
    config = common.config_of(args)

    def loss_now() -> float:
        return float(criterion.forward(model.forward(x), target))

    loss_before = loss_now()
    print(f"Loss: {loss_before}")          # the reference's print
    torch_losses = []

    def forward_backward(_: object) -> tuple[float, int]:
        output = model.forward(x)
        loss = criterion.forward(output, target)
        model.backward(x, criterion.backward(output, target))
        if torch_side is not None:
            torch_losses.append(torch_side.step(x_host, target_host))
        return float(loss), 1

    history = common.run_fit(model, criterion, optimizer, [None], epochs=args.steps,
                             forward_backward=forward_backward,
                             evaluate=lambda loop: {"loss": loop.state.losses[-1]},
                             callbacks=[train.ModelCheckpoint(checkpoint)], resume=args.resume,
                             config=config, seed=args.seed, print_every=max(1, args.steps // 10),
                             progress=not args.no_progress, desc="adam")
    state = history.state

    loss_after = loss_now()
    print(f"Loss after {state.global_step} Adam step(s): {loss_after}")
    metrics = {"example": NAME, "config": config, "steps": state.global_step,
               "loss_before": loss_before, "loss_after": loss_after,
               "loss_decreased": loss_after < loss_before, "losses": state.losses,
               "parameters": model.num_parameters(), "checkpoint": str(checkpoint)}
    fields = {"steps": state.global_step, "loss": f"{loss_before:.6f} -> {loss_after:.6f}",
              "decreased": loss_after < loss_before}
    if torch_side is not None:
        torch_after = torch_side.loss(x_host, target_host)
        metrics.update({"torch_losses": torch_losses, "torch_loss_after": torch_after,
                        "max_abs_diff_vs_torch": max(
                            [abs(a - b) for a, b in zip(state.losses, torch_losses)]
                            + [abs(loss_after - torch_after)])})
        # Differences: float32 here, float64 there, and where Adam adds epsilon (Lua's place,
        # see nngraph_py/optim/adam.py), which matters for tiny gradients.
        print(f"PyTorch, same weights and data: loss {torch_losses[0]:.6f} -> {torch_after:.6f}"
              f" (largest difference {metrics['max_abs_diff_vs_torch']:.1e})")
        fields["pytorch"] = f"{torch_losses[0]:.6f} -> {torch_after:.6f}"
    if state.global_step > 1:
        plot_loss(args.out / "loss.png", state.losses, torch_losses)
    common.write_json(args.out / "metrics.json", metrics)
    common.summary_line(NAME, **fields)
    return metrics


class TorchTwin:
    """The reference's PyTorch module with our weights, stepped alongside (only if torch is here)."""

    def __init__(self, torch: object, module: object, optimizer: object):
        self.torch, self.module, self.optimizer = torch, module, optimizer

    @classmethod
    def create(cls, model: nn.gModule, lr: float) -> "TorchTwin | None":
        try:
            import torch
        except ImportError:
            print("(PyTorch is not installed: no comparison)")
            return None

        class LSTMNetwork(torch.nn.Module):  # the reference's module, batch first
            def __init__(self) -> None:
                super().__init__()
                self.lstm = torch.nn.LSTM(INPUT_SIZE, HIDDEN_SIZE, NUM_LAYERS, batch_first=True)
                self.fc = torch.nn.Linear(HIDDEN_SIZE, OUTPUT_SIZE)

            def forward(self, x: object) -> object:
                out, _ = self.lstm(x)
                return self.fc(out[:, -1, :])

        module = LSTMNetwork().double()
        modules = dict(model.named_children())  # by node name
        lstm, fc = modules["lstm"], modules["fc"]
        weights = {k: torch.from_numpy(v.astype(np.float64))
                   for k, v in to_torch_state_dict(lstm).items()}
        module.lstm.load_state_dict(weights)
        module.fc.weight.data = torch.from_numpy(to_numpy(fc.weight).astype(np.float64))
        module.fc.bias.data = torch.from_numpy(to_numpy(fc.bias).astype(np.float64))
        return cls(torch, module, torch.optim.Adam(module.parameters(), lr=lr))

    def loss(self, x: np.ndarray, target: np.ndarray) -> float:
        with self.torch.no_grad():
            return float(self._loss(x, target))

    def _loss(self, x: np.ndarray, target: np.ndarray) -> object:
        xt = self.torch.from_numpy(x.astype(np.float64))
        return self.torch.nn.functional.mse_loss(self.module(xt),
                                                 self.torch.from_numpy(target.astype(np.float64)))

    def step(self, x: np.ndarray, target: np.ndarray) -> float:
        self.optimizer.zero_grad()
        loss = self._loss(x, target)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


def plot_loss(path: Path, losses: list[float], torch_losses: list[float]) -> None:
    fig, ax = common.new_figure()
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, "o-", ms=3, label="nngraph_py")
    if torch_losses:
        ax.plot(steps[:len(torch_losses)], torch_losses, "x--", ms=4, label="PyTorch")
    ax.set(xlabel="Adam step", ylabel="MSE (before the step)", yscale="log",
           title="LSTMNetwork(10, 20, 2) on one sequence")
    ax.legend()
    common.save_figure(fig, path)


if __name__ == "__main__":
    main(sys.argv[1:])
