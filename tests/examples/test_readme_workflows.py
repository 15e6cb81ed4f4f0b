"""A user's own data trained from the README's instructions alone, on tiny files: the training
section's CSV regression (Python) and the char-rnn section's two commands (train, then sample)."""
from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "tests"))

import char_lstm  # noqa: E402
from test_readme import write_regression_csv  # noqa: E402


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start:end if end > 0 else None]


def test_csv_regression_from_the_training_section(tmp_path: Path, monkeypatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", _section("## Training on your own data"), re.S)
    assert len(blocks) == 1 and "np.loadtxt(\"data.csv\"" in blocks[0]
    monkeypatch.chdir(tmp_path)
    write_regression_csv(tmp_path / "data.csv")
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)  # noqa: S102 - our own README
    history = namespace["history"]
    assert history["val_loss"][-1] < 0.2 * history["val_loss"][0]  # it learned y = x1 - 2 x2
    for name in ("checkpoint.npz", "best.npz", "log.csv"):
        assert (tmp_path / "runs" / "mine" / name).is_file()


#: Keeps the README's char-rnn commands tiny: appended to the training command.
TINY = ["--batch-size", "4", "--seq-length", "10", "--rnn-size", "12", "--num-layers", "1",
        "--max-steps", "6", "--eval-every", "3", "--length", "40", "--no-progress"]


def test_char_rnn_commands_from_the_readme_on_your_own_text(tmp_path: Path, monkeypatch,
                                                            capsys) -> None:
    bash = re.findall(r"```bash\n(.*?)```", _section("### char-rnn on your own text"), re.S)[0]
    commands = [shlex.split(line) for line in bash.replace("\\\n", " ").splitlines() if line]
    train_cmd, sample_cmd = (c[c.index("examples/char_lstm.py") + 1:] for c in commands)
    assert "--data" in train_cmd and "--sample-only" in sample_cmd
    redirect = sample_cmd.index(">")
    sample_cmd, out_file = sample_cmd[:redirect], sample_cmd[redirect + 1]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "input.txt").write_text("The cat sat on the mat. The dog sat on the log.\n" * 30,
                                        encoding="utf-8")
    char_lstm.main(train_cmd + TINY)
    capsys.readouterr()
    metrics = char_lstm.main(sample_cmd)
    sample = capsys.readouterr().out
    Path(out_file).write_text(sample)  # what the shell's "> sample.txt" does
    assert sample == metrics["sample"] + "\n" and sample.startswith("The ")
    assert len(metrics["sample"]) == len("The ") + 500
