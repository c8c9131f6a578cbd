"""flowprior.cli: degrade and metrics end to end, --set parsing, and the one-line error boundary."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from flowprior import __version__, io
from flowprior.cli import main, parse_set_options
from flowprior.errors import UsageError


@pytest.fixture
def photo(tmp_path, natural_image):
    return io.write_image(tmp_path / "in.png", natural_image)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ----------------------------------------------------------------------------------------------------- degrade


def test_degrade_writes_image_mask_and_sidecar(tmp_path, photo, capsys):
    out = tmp_path / "out.png"
    options = ["--set", "jpeg.quality=30", "--set", "noise.sigma=5:15", "--seed", "7"]
    code, stdout, stderr = _run(capsys, "degrade", photo, "-o", out, "-d", "jpeg+noise+mask", *options)
    assert code == 0, stderr
    assert str(out) in stdout and stderr == ""
    record = json.loads((tmp_path / "out.png.json").read_text())
    assert record["seed"] == 7 and record["mask"] == "out.mask.png" and record["output"] == "out.png"
    assert (
        record["degradation"].startswith("jpeg(quality=30,")
        and "noise(kind=gaussian,sigma=5:15)" in record["degradation"]
    )
    assert record["params"]["jpeg.quality"] == [30] and 5 <= record["params"]["noise.sigma"][0] <= 15
    assert record["params"]["mask.mask"] == {"shape": [1, 1, 64, 64], "dtype": "float32", "inline": False}

    mask = io.read_image(tmp_path / "out.mask.png")
    assert mask.pixels.shape == (1, 1, 64, 64) and mask.bit_depth == 8
    values = set(io.to_uint(mask.pixels).ravel().tolist())
    assert values == {0, 255}  # 255 = observed, 0 = missing
    degraded = io.read_image(out).pixels
    missing = mask.pixels == 0
    assert float(degraded.expand(-1, 3, -1, -1)[missing.expand(-1, 3, -1, -1)].abs().max()) == 0.0  # fill = 0
    clean = io.read_image(photo).pixels
    assert 0.01 < float((degraded - clean)[~missing.expand(-1, 3, -1, -1)].abs().mean()) < 0.2


def test_degrade_same_seed_same_bytes_other_seed_differs(tmp_path, photo, capsys):
    def run(name: str, seed: int) -> bytes:
        out = tmp_path / name
        assert main(["degrade", str(photo), "-o", str(out), "-d", "noise+mask", "--seed", str(seed)]) == 0
        return out.read_bytes() + (tmp_path / f"{out.stem}.mask.png").read_bytes()

    first, again, other = run("a.png", 3), run("b.png", 3), run("c.png", 4)
    assert first == again and first != other
    a, b = (json.loads((tmp_path / f"{n}.png.json").read_text()) for n in "ab")
    assert a["params"] == b["params"] and a["seed"] == 3


def test_degrade_keeps_16bit_depth_and_metadata(tmp_path, natural_image, capsys):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = io.write_image(tmp_path / "in16.png", natural_image, bit_depth=16, icc_profile=icc)
    assert main(["degrade", str(src), "-o", str(tmp_path / "o.tif"), "-d", "noise"]) == 0
    out = io.read_image(tmp_path / "o.tif")
    assert out.bit_depth == 16 and out.icc_profile == icc
    assert not (tmp_path / "o.mask.png").exists()  # noise removes no pixels
    # JPEG cannot store 16 bits: the output is 8-bit and a note says so on stderr
    code, _, stderr = _run(capsys, "degrade", src, "-o", tmp_path / "o.jpg", "-d", "noise")
    assert code == 0 and "8-bit" in stderr and io.read_image(tmp_path / "o.jpg").bit_depth == 8


def test_degrade_carries_alpha_where_it_can(tmp_path, natural_image, capsys):
    alpha = natural_image[:, 1:2].flip(-1)
    src = io.write_image(tmp_path / "rgba.png", natural_image, alpha=alpha)
    assert main(["degrade", str(src), "-o", str(tmp_path / "o.png"), "-d", "noise"]) == 0
    out = io.read_image(tmp_path / "o.png")
    assert torch.equal(out.alpha, io.read_image(src).alpha)  # untouched by the degradation
    for target, note in [("o.jpg", "JPEG has no alpha channel"), ("small.png", "changed the image size")]:
        spec = "noise" if target.endswith(".jpg") else "downsample"
        code, _, stderr = _run(capsys, "degrade", src, "-o", tmp_path / target, "-d", spec)
        assert code == 0 and note in stderr and io.read_image(tmp_path / target).alpha is None


def test_degrade_refuses_to_overwrite_its_input(photo, capsys):
    before = photo.read_bytes()
    code, _, stderr = _run(capsys, "degrade", photo, "-o", photo, "-d", "noise")
    assert code == 2 and "refusing to overwrite the input" in stderr
    assert photo.read_bytes() == before


# ------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["degrade", "{tmp}/missing.png", "-o", "{tmp}/o.png", "-d", "noise"], "no such file"),
        (["degrade", "{photo}", "-o", "{tmp}/o.png", "-d", "jpeg+wobble"], "unknown degradation 'wobble'"),
        (
            ["degrade", "{photo}", "-o", "{tmp}/o.png", "-d", "jpeg", "--set", "jpeg.quality=500"],
            "jpeg.quality",
        ),
        (["degrade", "{photo}", "-o", "{tmp}/o.png", "-d", "jpeg", "--set", "jpeg.qualty=5"], "jpeg.qualty"),
        (["degrade", "{photo}", "-o", "{tmp}/o.png", "-d", "jpeg", "--set", "jpeg.quality"], "key=value"),
        (["degrade", "{junk}", "-o", "{tmp}/o.png", "-d", "noise"], "junk.png: not a PNG, JPEG"),
        (["degrade", "{photo}", "-o", "{tmp}/o.gif", "-d", "noise"], "unsupported suffix '.gif'"),
        (["degrade", "{photo}", "-o", "{tmp}/nodir/o.png", "-d", "noise"], "does not exist"),
        (["degrade", "{photo}", "-d", "noise"], "required: -o/--output"),
        (["metrics", "{photo}", "{tmp}/missing.png"], "missing.png: no such file"),
        (["metrics", "{photo}", "{photo}", "--border", "40"], "border 40"),
        (["metrics", "{photo}", "{photo}", "--border", "x"], "invalid int value: 'x'"),
        (["restore", "{photo}"], "required: -o"),
        (["frobnicate", "{photo}"], "invalid choice: 'frobnicate'"),
        ([], "required: COMMAND"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(tmp_path, photo, capsys, argv, expected):
    (tmp_path / "junk.png").write_text("not an image")
    argv = [a.format(tmp=tmp_path, photo=photo, junk=tmp_path / "junk.png") for a in argv]
    code, stdout, stderr = _run(capsys, *argv)
    assert code == 2 and stdout == ""
    assert stderr.startswith("flowprior: error: ") and stderr.count("\n") == 1, stderr
    assert expected in stderr and "Traceback" not in stderr
    assert not (tmp_path / "o.png").exists()


def test_keyboard_interrupt_exits_130(monkeypatch, photo, tmp_path, capsys):
    import flowprior.degrade

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(flowprior.degrade, "degrade_file", interrupted)
    code, _, stderr = _run(capsys, "degrade", photo, "-o", tmp_path / "o.png", "-d", "noise")
    assert code == 130 and "interrupted" in stderr


def test_bugs_keep_their_traceback(monkeypatch, photo, tmp_path):
    import flowprior.degrade

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(flowprior.degrade, "degrade_file", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["degrade", str(photo), "-o", str(tmp_path / "o.png"), "-d", "noise"])


# ------------------------------------------------------------------------------------------------- metrics


def test_metrics_table_and_json(tmp_path, make_natural_image, capsys):
    clean = make_natural_image(176, 176)
    noisy = (clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    ref, test = io.write_image(tmp_path / "r.png", clean), io.write_image(tmp_path / "t.png", noisy)
    code, stdout, _ = _run(capsys, "metrics", ref, test, "--json")
    result = json.loads(stdout)
    assert code == 0 and 24 < result["psnr"] < 28 and 0 < result["ssim"] < result["ms_ssim"] < 1
    code, stdout, _ = _run(capsys, "metrics", ref, test)
    lines = stdout.splitlines()
    assert lines[0] == f"PSNR     {result['psnr']:.2f} dB" and lines[2] == f"MS-SSIM  {result['ms_ssim']:.4f}"

    small = io.write_image(tmp_path / "s.png", clean[..., :64, :64])
    code, stdout, _ = _run(capsys, "metrics", small, small, "--json")
    result = json.loads(stdout)  # strict JSON: PSNR inf is the string "inf", a skipped MS-SSIM is null
    assert result["psnr"] == "inf" and result["ms_ssim"] is None and result["ssim"] == pytest.approx(1.0)
    _, stdout, _ = _run(capsys, "metrics", small, small)
    assert "MS-SSIM  n/a" in stdout


# ------------------------------------------------------------------------------------------------ helpers


def test_set_options_parse_values_as_yaml():
    parsed = parse_set_options(
        ["a=30", "b=0.5", "c=5:15", "d=1e-3", "e=true", "f=[10, 70]", "g=yes", "h=017"]
    )
    assert parsed == {
        "a": 30,
        "b": 0.5,
        "c": "5:15",
        "d": 0.001,
        "e": True,
        "f": [10, 70],
        "g": "yes",
        "h": "017",
    }
    assert type(parsed["a"]) is int and type(parsed["b"]) is float
    for bad, message in [
        ("novalue", "key=value"),
        ("=3", "key=value"),
        ("k=", "empty value"),
        ("k=[1, 2", "k"),
    ]:
        with pytest.raises(UsageError, match=message):
            parse_set_options([bad])
    with pytest.raises(UsageError, match="given twice"):
        parse_set_options(["k=1", "k=2"])


def test_version_and_module_entry_point(capsys):
    code, stdout, _ = _run(capsys, "--version")
    assert code == 0 and stdout.strip() == f"flowprior {__version__}"
    done = subprocess.run(
        [sys.executable, "-m", "flowprior", "metrics"], check=False, capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stderr.startswith("flowprior: error: the following arguments")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
