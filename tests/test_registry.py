"""Registry, spec parsing (inline and dotted-dict arguments) and Chain composition."""

from __future__ import annotations

import pytest
import torch

from degradations import (
    JPEG,
    Chain,
    Degradation,
    Downsample,
    Identity,
    Mask,
    Noise,
    available,
    get,
    parse,
    registry,
)
from degradations.args import format_value

ALL = ["blur", "downsample", "haze", "identity", "jpeg", "mask", "noise", "rain", "snow"]


def test_available_and_get():
    assert available() == ALL
    assert get("jpeg") is JPEG
    with pytest.raises(ValueError) as err:
        get("jpg")
    for name in ALL:
        assert name in str(err.value)


def test_register_rejects_duplicates_and_bad_names(monkeypatch):
    monkeypatch.setattr(registry, "OPERATORS", registry.OPERATORS.copy())

    class Again(Identity):
        name = "jpeg"

    with pytest.raises(ValueError, match="already registered"):
        registry.register(Again)

    class Nameless(Identity):
        name = ""

    with pytest.raises(ValueError, match="identifier"):
        registry.register(Nameless)

    class Fresh(Identity):
        name = "fresh"

        def spec(self) -> str:
            return "fresh"

    assert registry.register(Fresh) is Fresh
    assert isinstance(parse("fresh"), Fresh)


def test_unknown_operator_lists_valid_names():
    with pytest.raises(ValueError, match="unknown degradation 'jpg'.*blur, downsample, haze"):
        parse("jpeg+jpg")


@pytest.mark.parametrize(
    ("spec", "params", "key"),
    [
        ("jpeg(quality=0)", None, "jpeg.quality"),
        ("jpeg(quality=101)", None, "jpeg.quality"),
        ("jpeg", {"jpeg.quality": "0:50"}, "jpeg.quality"),
        ("jpeg", {"jpeg.quality": 30.5}, "jpeg.quality"),
        ("jpeg", {"jpeg.quality": "high"}, "jpeg.quality"),
        ("jpeg(subsampling=422)", None, "jpeg.subsampling"),
        ("noise(sigma=-1)", None, "noise.sigma"),
        ("noise", {"noise.sigma": (20, 10)}, "noise.sigma"),
        ("noise(kind=gaussian,peak=3)", None, "noise.peak"),
        ("noise(kind=speckle)", None, "noise.kind"),
        ("noise(kind=uniform,low=5,high=-5)", None, "noise.low"),
        ("noise+noise", {"noise#2.sigma": -3}, "noise#2.sigma"),
        ("mask(coverage=1.5)", None, "mask.coverage"),
        ("mask(kind=file)", None, "mask.path"),
        ("mask(kind=file,path=m.png,invert=maybe)", None, "mask.invert"),
        ("downsample(factor=2:3)", None, "downsample.factor"),
        ("blur(sigma=1,kind=disk)", None, "blur.sigma"),
        ("jpeg(qualty=30)", None, "jpeg.qualty"),
        ("jpeg", {"jpeg.qualty": 30}, "jpeg.qualty"),
        ("jpeg", {"noise.sigma": 3}, "noise.sigma"),
        ("jpeg", {"quality": 3}, "quality"),
    ],
)
def test_bad_arguments_name_the_key(spec, params, key):
    with pytest.raises(ValueError) as err:
        parse(spec, params)
    assert str(err.value).startswith(f"{key}:"), str(err.value)


@pytest.mark.parametrize(
    "spec", ["", "jpeg+", "jpeg(quality=30", "jpeg)", "jpeg(30)", "jpeg(quality=1,quality=2)"]
)
def test_malformed_specs(spec):
    with pytest.raises(ValueError):
        parse(spec)


def test_inline_and_dict_arguments_agree():
    inline = parse("jpeg(quality=10:70)+noise(sigma=5:15)")
    for value in ("5:15", (5, 15), [5, 15]):
        from_dict = parse("jpeg+noise", {"jpeg.quality": "10:70", "noise.sigma": value})
        assert from_dict.spec() == inline.spec()
    # A dict value overrides the inline one; strings are converted like inline text.
    assert parse("jpeg(quality=10)", {"jpeg.quality": "30"}).spec() == JPEG(quality=30).spec()
    assert parse(" jpeg ( quality = 30 ) + noise ").spec() == parse("jpeg(quality=30)+noise").spec()


def test_spec_text_forms():
    op = parse(
        "noise(kind=uniform,low=-0.5:-0.25,high=1e-3)+mask(kind=file,path='/tmp/a b,(c)+d.png',invert=true)"
    )
    assert op.spec() == (
        "noise(kind=uniform,low=-0.5:-0.25,high=0.001)"
        "+mask(kind=file,path='/tmp/a b,(c)+d.png',invert=true,fill=0)"
    )
    assert parse(op.spec()).spec() == op.spec()
    assert format_value(0.1) == "0.1" and format_value(30.0) == "30" and format_value((2, 2)) == "2"
    assert (
        format_value("123") == "'123'"
        and format_value("true") == "'true'"
        and format_value("a/b.png") == "a/b.png"
    )


def test_single_term_is_not_a_chain():
    assert isinstance(parse("noise"), Noise)
    assert isinstance(parse("noise+identity"), Chain)


def test_chain_flattens_and_keeps_order():
    a, b, c = Noise(sigma=1), JPEG(), Mask()
    for chain in ((a + b) + c, a + (b + c), Chain([a, Chain([b, c])])):
        assert isinstance(chain, Chain) and chain.members == [a, b, c]
        assert chain.spec() == f"{a.spec()}+{b.spec()}+{c.spec()}"
    assert parse("noise+jpeg+noise+mask").keys == ["noise", "jpeg", "noise#2", "mask"]


def test_chain_params_are_namespaced_and_apply_in_order():
    op = parse("noise(sigma=3)+jpeg(quality=40)+noise(sigma=4)+mask")
    x = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    y, p = op(x, generator=torch.Generator().manual_seed(1))
    assert sorted(p) == [
        "jpeg.quality",
        "mask.mask",
        "noise#2.seed",
        "noise#2.sigma",
        "noise.seed",
        "noise.sigma",
    ]
    assert torch.equal(p["noise.sigma"], torch.full((2,), 3.0, dtype=torch.float64))
    assert torch.equal(p["noise#2.sigma"], torch.full((2,), 4.0, dtype=torch.float64))
    by_hand = x
    for member, key in zip(op.members, op.keys):
        by_hand = member.apply(
            by_hand, {k.split(".", 1)[1]: v for k, v in p.items() if k.split(".")[0] == key}
        )
    assert torch.equal(y, by_hand)
    torch.testing.assert_close(op.noise_std(p), torch.full((2,), 5.0 / 255, dtype=torch.float64))
    assert torch.equal(op.observed_mask(p), p["mask.mask"])


def test_chain_masks_multiply_and_follow_resizing():
    op = parse("mask(size=2,coverage=0.2)+mask(kind=strokes,count=2,width=2)")
    p = op.sample_params((1, 3, 32, 32), torch.Generator().manual_seed(0))
    assert torch.equal(op.observed_mask(p), p["mask.mask"] * p["mask#2.mask"])
    sr = parse("mask(size=3,coverage=0.2)+downsample(factor=2,mode=area)")
    p = sr.sample_params((1, 3, 32, 32), torch.Generator().manual_seed(0))
    m = sr.observed_mask(p)
    assert m.shape == (1, 1, 16, 16)
    full = p["mask.mask"].reshape(16, 2, 16, 2).amin(dim=(1, 3))  # observed iff all four pixels were
    assert torch.equal(m[0, 0], full)
    assert parse("noise+jpeg").observed_mask(parse("noise+jpeg").sample_params((1, 3, 8, 8))) is None


def test_chain_sizes_blocks_and_linearity():
    op = Downsample(factor=2) + Downsample(factor=3, mode="area") + JPEG()
    assert op.output_size(100, 61) == (16, 10)
    # on the clean grid: 2, the x3 after the x2 (6 clean px), the JPEG's 16 px on the x6 smaller grid (96)
    assert op.block_size() == 96
    assert op.input_size(16, 10) == (96, 60) and op.output_size(*op.input_size(16, 10)) == (16, 10)
    assert (Mask() + Downsample(factor=2)).linear and not (Mask() + JPEG()).linear
    assert Chain([Identity()]).linear and Degradation.linear is False
    with pytest.raises(ValueError):
        Chain([])
