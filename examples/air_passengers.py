"""Forecast the airline passengers series with a stacked LSTM (reference result, Keras: final
training MSE 0.0130).

144 monthly totals (thousands of passengers, 1949-1960). As in the reference (a Keras script), the series is scaled to
[-1, 1], cut into windows of 60 months, and an LSTM reads each window to predict the next month:

    window (batch, 60, 1) -> LSTM(1 -> 64, 2 layers) -> outputs[:, -1] -> Linear(64 -> 1) -> MSE

trained full-batch with Adam (lr 0.01) for 100 epochs.

A training error alone says little, so by default the last 12 months (1960) are held out: the
scaler is fitted on 1949-1959 only, the model trains on the windows inside that period, and 1960
is forecast two ways, in passengers (thousands):

  one-step   each month from the 60 true months before it (the reference's setting, out of sample);
  recursive  all of 1960 from data up to December 1959, each prediction fed back as input -
             the information the seasonal-naive baseline has (1960 = 1959 repeated, RMSE 50.7).

--no-holdout is the reference's data setting: scaler and windows over all 144 months (84 windows);
only the training MSE is reported.

Beyond the reference: --seasonal-diff models each month's change from the same month a year earlier
(what the seasonal-naive forecast leaves over): the LSTM then learns the growth, not the level
it cannot extrapolate beyond the training range. Its 1960 forecasts have less than half the
baseline's error for each of --seed 1 to 5 (RESULTS.md) - about what the seasonal-naive
forecast scaled by the last year's growth achieves.

Examples:
  python examples/air_passengers.py                      # the reference's model, 1960 held out
  python examples/air_passengers.py --no-holdout         # the reference's data setting
  python examples/air_passengers.py --seasonal-diff

Outputs (in --out): checkpoint.npz, metrics.json, forecast.png (series, fit and 1960 forecasts;
training loss).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import common  # examples/common.py: flags, device, the command line's training exits, plots
from lstm import LSTM
from nngraph_py import nn, optim, to_device, to_numpy, train
from nngraph_py.backend import manual_seed
from nngraph_py.data import MinMaxScaler, load_air_passengers, make_windows, seasonal_naive_rmse
from nngraph_py.nn.select import Select

NAME = "air_passengers"
REFERENCE_MSE = 0.0130  # the reference result: Keras' final training loss (scaled)
#: Flags that shape the model: refused on --resume when they differ from the checkpoint's.
ARCHITECTURE = ("hidden", "layers", "window", "seasonal_diff", "no_holdout")
TEST_MONTHS = 12       # 1960


def parse_args(argv: list[str] | None) -> object:
    parser = common.make_parser(NAME, __doc__)
    data = parser.add_argument_group("data")
    data.add_argument("--window", type=common.positive_int, default=60,
                      help="months read to predict the next (default: %(default)s)")
    data.add_argument("--no-holdout", action="store_true",
                      help="train on all 144 months, as the reference (no test forecast)")
    data.add_argument("--seasonal-diff", action="store_true",
                      help="model the change from the same month a year earlier (the "
                           "seasonal-naive forecast is a change of 0)")
    model = parser.add_argument_group("model")
    model.add_argument("--hidden", type=common.positive_int, default=64,
                       help="hidden units (default: %(default)s)")
    model.add_argument("--layers", type=common.positive_int, default=2,
                       help="LSTM layers (default: %(default)s)")
    training = parser.add_argument_group("training (full batch)")
    training.add_argument("--epochs", type=common.positive_int, default=100,
                          help="Adam steps (default: %(default)s)")
    training.add_argument("--lr", type=common.positive_float, default=0.01, help="Adam's learning rate "
                                                              "(default: %(default)s)")
    training.add_argument("--schedule", choices=("none", "cosine"), default="none",
                       help="learning-rate schedule (default: %(default)s)")
    args = parser.parse_args(argv)
    args = common.finish_args(parser, argv, args, ARCHITECTURE)
    if args.out is None:
        variant = "seed" if args.no_holdout else "holdout"
        args.out = common.default_out(NAME, variant + ("-sdiff" if args.seasonal_diff else ""))
    return args


def build_model(hidden: int, layers: int) -> nn.gModule:
    """window (batch, T, 1) -> LSTM -> last step -> Linear -> the next value (batch, 1)."""
    window = nn.Identity()().annotate(name="window")
    outputs = nn.SelectTable(0)(LSTM(1, hidden, layers)(window).annotate(name="lstm"))
    last = Select(1, -1)(outputs).annotate(name="last_step")
    prediction = nn.Linear(hidden, 1)(last).annotate(name="next_month")
    return nn.gModule([window], [prediction])


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = common.select_device(args.device)
    manual_seed(args.seed)

    # ---- data: scale with statistics of the training months only -----------------------------
    months, passengers = load_air_passengers()
    lag = 12 if args.seasonal_diff else 0
    # The modeled value of month t is at [t - lag]: the series itself, or its yearly change.
    modeled = passengers[lag:] - passengers[:len(passengers) - lag] if lag else passengers
    n_test = 0 if args.no_holdout else TEST_MONTHS
    train_part = modeled[:len(modeled) - n_test]
    scaler = MinMaxScaler((-1, 1)).fit(train_part)
    scaled = scaler.transform(modeled).astype(np.float32)
    x_train, y_train = make_windows(scaled[:len(train_part)], args.window)
    x_train, y_train = x_train[:, :, None], y_train[:, None]        # (N, window, 1), (N, 1)
    print(f"data: {len(passengers)} months {months[0]}..{months[-1]}; {len(x_train)} training "
          f"windows of {args.window}" + (f"; {months[-n_test]}..{months[-1]} held out"
                                         if n_test else " (no holdout, as the reference)"))

    # ---- model, loss, optimizer --------------------------------------------------------------
    model = build_model(args.hidden, args.layers).to(device)
    criterion = nn.MSECriterion().to(device)
    optimizer = optim.Adam(model, lr=args.lr)
    print(model)
    print(f"{model.num_parameters():,} parameters; full batch, Adam lr {args.lr}, "
          f"{args.epochs} epochs")
    checkpoint = args.out / "checkpoint.npz"
    config = common.config_of(args)
    x_dev, y_dev = to_device(x_train, device), to_device(y_train, device)

    def predict(windows: np.ndarray) -> np.ndarray:
        """Scaled predictions for scaled windows (N, window), on the host."""
        model.evaluate()
        out = to_numpy(model.forward(to_device(windows[:, :, None].astype(np.float32), device)))
        model.training()
        return out[:, 0]

    def to_passengers(scaled_values: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Passengers in months ``t`` (indices into the series) from scaled model outputs."""
        values = scaler.inverse_transform(scaled_values)
        if lag:
            values = values + passengers[t - lag]  # a change from the same month a year earlier
        return values

    test_t = np.arange(len(passengers) - n_test, len(passengers))

    def rmse(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.sqrt(np.mean((a - b) ** 2)))

    def one_step_forecast() -> np.ndarray:
        """Each held-out month from the true window before it (passengers)."""
        windows = np.stack([scaled[t - lag - args.window:t - lag] for t in test_t])
        return to_passengers(predict(windows), test_t)

    def recursive_forecast() -> np.ndarray:
        """The held-out months from the training months only, predictions fed back."""
        history = list(scaled[:len(train_part)])
        for _ in range(n_test):
            history.append(predict(np.asarray([history[-args.window:]]))[0])
        return to_passengers(np.asarray(history[-n_test:]), test_t)

    def evaluate(loop: train.Loop) -> dict:
        metrics = {"train_mse": loop.state.losses[-1]}
        if n_test:
            metrics["test_rmse_one_step"] = rmse(one_step_forecast(), passengers[-n_test:])
        return metrics

    callbacks: list = [train.ModelCheckpoint(checkpoint)]
    if args.schedule == "cosine":
        callbacks.append(train.LRSchedule(
            lambda step: optim.cosine_decay(args.lr, step, args.epochs)))
    history = common.run_fit(model, criterion, optimizer, [(x_dev, y_dev)], epochs=args.epochs,
                             evaluate=evaluate, callbacks=callbacks, resume=args.resume,
                             config=config, seed=args.seed, progress=not args.no_progress,
                             print_every=max(1, args.epochs // 10), desc="lstm")
    state = history.state

    # ---- results -----------------------------------------------------------------------------
    fit_t = np.arange(len(x_train)) + args.window + lag
    fit_values = to_passengers(predict(x_train[:, :, 0]), fit_t)
    metrics = {"example": NAME, "config": config, "epochs": state.epoch,
               "final_train_mse_scaled": state.losses[-1] if state.losses else None,
               "reference_train_mse": REFERENCE_MSE, "train_time_s": round(state.elapsed_s, 1),
               "parameters": model.num_parameters(), "history": state.history,
               "checkpoint": str(checkpoint)}
    fields = {"epochs": state.epoch, "final_train_mse": f"{metrics['final_train_mse_scaled']:.4f}"
              f" (scaled; reference result {REFERENCE_MSE})"}
    forecasts = {}
    if n_test:
        truth = passengers[-n_test:]
        forecasts = {"one-step": one_step_forecast(), "recursive": recursive_forecast()}
        baseline = seasonal_naive_rmse(passengers, n_test, season=12)
        metrics.update({
            "test_months": months[-n_test:], "test_truth": truth,
            "test_rmse_one_step": rmse(forecasts["one-step"], truth),
            "test_rmse_recursive": rmse(forecasts["recursive"], truth),
            "seasonal_naive_rmse": baseline,
            "forecast_one_step": forecasts["one-step"],
            "forecast_recursive": forecasts["recursive"]})
        fields.update({
            "test_rmse_1960": f"one-step {metrics['test_rmse_one_step']:.1f}, recursive "
                              f"{metrics['test_rmse_recursive']:.1f}",
            "seasonal_naive": f"{baseline:.1f} (thousand passengers)"})
    fields["train_time"] = f"{state.elapsed_s:.1f} s"
    plot_forecast(args.out / "forecast.png", months, passengers, fit_t, fit_values,
                  forecasts, state.losses, n_test)
    common.write_json(args.out / "metrics.json", metrics)
    print(f"outputs in {args.out}/: checkpoint.npz, metrics.json, forecast.png")
    common.summary_line(NAME, **fields)
    return metrics


def plot_forecast(path: Path, months: list[str], passengers: np.ndarray, fit_t: np.ndarray,
                  fit_values: np.ndarray, forecasts: dict, losses: list[float],
                  n_test: int) -> None:
    """The series with the model's fit and forecasts (all of it, then the last three years),
    and the training loss."""
    panels = 3 if n_test else 2
    fig, axes = common.new_figure(ncols=panels, width=5.5)
    t = np.arange(len(passengers))
    for ax, start in zip(axes[:panels - 1], (0, len(passengers) - 36)):
        shown = t >= start
        ax.plot(t[shown], passengers[shown], color="black", lw=1.2, label="truth")
        keep = fit_t >= start
        ax.plot(fit_t[keep], fit_values[keep], color="tab:blue", lw=1,
                label="fit (training windows)")
        if n_test:
            test_t = t[-n_test:]
            ax.plot(test_t, passengers[-2 * n_test:-n_test], color="gray", ls=":",
                    label="seasonal naive (1959 again)")
            ax.plot(test_t, forecasts["one-step"], "o-", ms=3, color="tab:orange",
                    label="one-step forecast")
            ax.plot(test_t, forecasts["recursive"], "s-", ms=3, color="tab:red",
                    label="recursive forecast")
            ax.axvspan(test_t[0] - 0.5, test_t[-1] + 0.5, color="tab:orange", alpha=0.08)
        step = 24 if start == 0 else 6
        ticks = [i for i in range(start, len(months)) if (i - start) % step == 0]
        ax.set_xticks(ticks, [months[i] if step < 12 else months[i][:4] for i in ticks])
        ax.set(xlabel="month", ylabel="passengers (thousands)",
               title="airline passengers" + (" (last three years)" if start else ""))
    axes[0].legend(fontsize=8)
    ax_loss = axes[panels - 1]
    ax_loss.plot(np.arange(1, len(losses) + 1), losses, color="tab:blue")
    ax_loss.axhline(REFERENCE_MSE, color="gray", ls="--", label=f"reference result (Keras): {REFERENCE_MSE}")
    ax_loss.set(xlabel="epoch (full batch)", ylabel="training MSE (scaled)", yscale="log",
                title="training loss")
    ax_loss.legend()
    common.save_figure(fig, path)


if __name__ == "__main__":
    main(sys.argv[1:])
