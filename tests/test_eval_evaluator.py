"""Domain classifier and Evaluator, end to end on CPU. The classifier trains once per session
(about 15-60 s on 2 cores, depending on load) into a temporary cache."""
import hashlib
import math

import pytest
import torch
import torch_fidelity

from study.config import DataConfig, EvalConfig
from study.data import Dataset, load_dataset, sample_toy
from study.eval import fid as F
from study.eval.classifier import cache_file, get_classifier
from study.eval.evaluator import Evaluator, default_cache_dir

MNIST = DataConfig(name="mnist5k")
SMALL = EvalConfig(num_samples=1000)


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("wgan-eval-cache")


@pytest.fixture(scope="session")
def mnist():
    return load_dataset(MNIST)


@pytest.fixture(scope="session")
def classifier(cache, mnist):
    return get_classifier(MNIST, cache, "cpu", data=mnist)


@pytest.fixture(scope="session")
def mnist_eval(cache, mnist, classifier):
    return Evaluator(mnist, MNIST, SMALL, "cpu", cache)


class _List(torch.utils.data.Dataset):  # uint8 images, as torch-fidelity reads them
    def __init__(self, x): self.x = x
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return self.x[i]


def _pick(x: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]]


def test_classifier_reaches_documented_accuracy_and_is_cached(cache, classifier, mnist):
    net, acc = classifier
    assert acc >= 0.95  # documented: 0.971 on the 1,000 held-out mnist5k images
    assert cache_file(cache, "mnist5k", 32).exists()
    again, acc2 = get_classifier(MNIST, cache, "cpu")  # from the cache file, no training
    assert acc2 == acc
    torch.testing.assert_close(again(mnist.test_x[:50]), net(mnist.test_x[:50]))
    # the stacked-MNIST classifier is the MNIST one
    assert cache_file(cache, "stacked_mnist5k", 32) == cache_file(cache, "mnist5k", 32)


def test_mnist_evaluator_scores_and_agrees_with_torch_fidelity(mnist_eval, mnist):
    real = _pick(mnist.train_x, 1000)
    good = mnist_eval(real)
    noisy = mnist_eval((real + 0.5 * torch.randn(real.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1))
    final_only = {"eval/kid@domain", "eval/isc@domain", "eval/precision@domain", "eval/recall@domain",
                  "eval/density@domain", "eval/coverage@domain"}
    assert set(good) == {"eval/fid@domain", "eval/modes", "eval/mode_kl", "eval/hq", "eval/modes_hq",
                         "eval/modes_knn", "eval/hq_knn"} | final_only
    assert good["eval/modes"] == 10 and good["eval/mode_kl"] < 0.02 and good["eval/hq"] > 0.85
    # real digits against held-out ones (Naeem et al. 2020): density about 1, coverage high; noise lowers both
    assert 0.7 < good["eval/density@domain"] < 1.3 and good["eval/coverage@domain"] > 0.8
    assert noisy["eval/coverage@domain"] < good["eval/coverage@domain"]
    # the second classifier (pixel kNN) and the confident-sample counts agree on real digits
    assert good["eval/modes_hq"] == 10 and good["eval/modes_knn"] == 10 and good["eval/hq_knn"] > 0.8
    assert mnist_eval.info["knn_acc"] > 0.9
    blank = mnist_eval(torch.full((1000, 1, 32, 32), -1.0))  # one "image", unrecognisable or a single class
    assert blank["eval/modes"] == 1 and blank["eval/mode_kl"] == pytest.approx(math.log(10))
    assert set(mnist_eval(real, final=False)) == set(good) - final_only  # KID, IS, P/R: final point only
    assert good["eval/fid@domain"] < 0.5 and noisy["eval/fid@domain"] > 2 * good["eval/fid@domain"]
    assert good["eval/kid@domain"] < 0.01 < noisy["eval/kid@domain"]
    # the same numbers from torch-fidelity's own pipeline on the registered extractor
    name = mnist_eval.domain_extractor.get_name()
    ref = torch_fidelity.calculate_metrics(input1=_List(F.to_uint8(mnist.test_x)), input2=_List(F.to_uint8(real)),
                                           feature_extractor=name,
                                           fid=True, kid=True, kid_subsets=10, kid_subset_size=1000, cuda=False,
                                           cache=False, verbose=False, save_cpu_ram=True)
    assert good["eval/fid@domain"] == pytest.approx(ref["frechet_inception_distance"], rel=1e-4)
    # ours sums in float64, torch-fidelity's pipeline in float32: KID ~1e-3 is a difference of kernel
    # means ~1e2, so the float32 side carries ~1e-6 of rounding
    assert good["eval/kid@domain"] == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-4, abs=2e-6)
    info = mnist_eval.info
    assert info["num_samples"] == 1000 and info["n_real"] == {"domain": 1000}
    assert info["real_split"].startswith("test") and info["domain_classifier_acc"] >= 0.95
    assert set(info["real_floor"]) == set(good)  # the class part of the floor waits for a conditional call


def test_evaluator_fixed_n_nonfinite_and_rng(mnist_eval, mnist):
    with pytest.raises(ValueError, match="num_samples"):
        mnist_eval(mnist.train_x[:10])
    bad = mnist.train_x[:1000].clone()
    bad[0, 0, 0, 0] = float("nan")
    assert all(math.isnan(v) for v in mnist_eval(bad).values())
    state = torch.get_rng_state()
    mnist_eval(mnist.train_x[:1200])  # more than N: the first N are used
    assert torch.equal(state, torch.get_rng_state())  # evaluation never draws from the trial's RNG


def test_stacked_mnist_modes_by_channel(cache, classifier):
    cfg = DataConfig(name="stacked_mnist5k", synthetic_size=2000)
    data = load_dataset(cfg)
    ev = Evaluator(data, cfg, EvalConfig(num_samples=1000, extractors=[]), "cpu", cache)
    assert set(ev(data.train_x[:1000])) == {"eval/modes", "eval/mode_kl", "eval/hq", "eval/modes_hq", "eval/modes_knn",
                                            "eval/hq_knn"}
    real = ev(data.train_x[:1000])
    assert 500 < real["eval/modes"] <= 1000  # ~632 expected for a uniform generator at N = 1000
    collapsed = ev(data.train_x[:1].expand(1000, -1, -1, -1))
    assert collapsed["eval/modes"] == 1 and collapsed["eval/mode_kl"] == pytest.approx(math.log(1000))
    # per-channel labels: 100 a + 10 b + c
    logits = F.extract(ev.domain_extractor, F.to_uint8(data.test_x))["logits"].argmax(-1)
    labels = logits[:, 0] * 100 + logits[:, 1] * 10 + logits[:, 2]
    assert (labels == data.test_y).float().mean() > 0.85  # ~0.97^3


def test_ring8_evaluator(tmp_path):
    cfg = DataConfig(name="ring8", synthetic_size=1000, holdout=200)
    data = load_dataset(cfg)
    ev = Evaluator(data, cfg, EvalConfig(num_samples=2000, w1_points=500, w1_draws=2), "cpu", tmp_path)
    x = sample_toy("ring8", 2000, torch.Generator().manual_seed(5))[0]
    good, shifted = ev(x), ev(x + 0.5)
    assert good["eval/modes"] == 8 and good["eval/hq"] == pytest.approx(0.989, abs=0.01)
    assert good["eval/w1"] < 0.2 and shifted["eval/w1"] > 0.45 and shifted["eval/hq"] == 0
    assert ev.info["real_floor"]["eval/w1"] < 0.2


def test_unlabelled_images_without_inception_weights_give_notes_not_numbers(tmp_path):
    data = Dataset("image_folder", "image", None, torch.rand(20, 3, 16, 16) * 2 - 1)
    cfg = EvalConfig(num_samples=20, extractors=["domain", "inception"], inception_weights=str(tmp_path / "no.pth"))
    ev = Evaluator(data, DataConfig(name="image_folder", image_size=16), cfg, "cpu", tmp_path)
    assert ev(torch.zeros(20, 3, 16, 16)) == {}
    notes = " ".join(ev.info["notes"])
    assert "domain FID/KID skipped" in notes and "inception skipped" in notes and "no.pth" in notes


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("WGAN_STUDY_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("WGAN_STUDY_CACHE")
    assert default_cache_dir().name == "wgan-study"


@pytest.mark.slow
def test_inception_path_with_random_weights(tmp_path, monkeypatch):
    """The Inception branch end to end, with random weights (the real ones need the internet)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    monkeypatch.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
    monkeypatch.setattr("torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url", lambda *a, **k: {})
    weights = tmp_path / "inception.pth"
    torch.save(FeatureExtractorInceptionV3("inception-v3-compat", ["2048"]).state_dict(), weights)
    monkeypatch.undo()
    data = Dataset("image_folder", "image", None, torch.rand(8, 3, 16, 16) * 2 - 1)
    cfg = EvalConfig(num_samples=8, extractors=["inception"], inception_weights=str(weights))
    with pytest.warns(UserWarning, match="not the standard pt_inception-2015-12-05"):
        ev = Evaluator(data, DataConfig(name="image_folder", image_size=16), cfg, "cpu", tmp_path)
    out = ev(data.test_x)
    assert set(out) == {f"eval/{m}@inception" for m in ("fid", "kid", "isc", "precision", "recall", "density",
                                                         "coverage")}
    assert abs(out["eval/fid@inception"]) < 1e-3 and out["eval/precision@inception"] == 1.0
    assert ev.info["n_real"] == {"inception": 8}
    # provenance: the weights' sha256, not the standard file (warned), and part of the statistics' cache key
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert ev.info["inception_weights"] == {"file": str(weights), "sha256": sha, "standard": False}
    assert any("not the standard pt_inception-2015-12-05" in n for n in ev.info["notes"])
    assert [p.name for p in (tmp_path / "real_stats").glob("*.npz")] == [
        f"image_folder_test_inception-v3-compat-{sha[:16]}_n8_{F.images_digest(F.to_uint8(data.test_x))}.npz"]


def test_inception_score_and_precision_recall_on_domain_features(mnist_eval, mnist):
    real = mnist_eval(_pick(mnist.train_x, 1000))
    # real digits: ten confident classes in equal shares give an IS near 10; ~90% of their features lie in
    # the held-out ones' 3-NN balls and the other way round (0.90 / 0.89 measured)
    assert 8 < real["eval/isc@domain"] <= 10
    assert real["eval/precision@domain"] > 0.8 and real["eval/recall@domain"] > 0.8
    one = mnist_eval(mnist.train_x[mnist.train_y == 3][:1].expand(1000, -1, -1, -1))  # collapsed onto one digit
    assert one["eval/isc@domain"] == pytest.approx(1.0, abs=1e-6) and one["eval/recall@domain"] < 0.01
    assert mnist_eval.info["real_floor"]["eval/isc@domain"] > 8


def test_torchmetrics_crosscheck_of_the_final_fid_and_kid(mnist_eval, mnist):
    x = (_pick(mnist.train_x, 1200, seed=3) + 0.3 * torch.randn(1200, 1, 32, 32,
                                                                 generator=torch.Generator().manual_seed(2))).clamp(-1, 1)
    scores = mnist_eval(x)
    state = torch.get_rng_state()
    check = mnist_eval.crosscheck(x)
    assert torch.equal(state, torch.get_rng_state())  # torchmetrics' KID subset draw is fenced off
    fid, kid = check["fid@domain"], check["kid@domain"]
    assert fid["torch_fidelity"] == scores["eval/fid@domain"]  # the very number the trial reports
    # tolerances and why: study/eval/crosscheck.py
    assert fid["torchmetrics"] == pytest.approx(fid["torch_fidelity"], rel=1e-5) and fid["rel_diff"] < 1e-5
    assert kid["torchmetrics"] == pytest.approx(kid["torch_fidelity"], rel=1e-9) and kid["n_gen"] == 1000
    assert fid["n_real"] == 1000 and fid["n_gen"] == 1000


def test_a_note_about_one_trials_samples_does_not_stick_to_the_shared_evaluator(tmp_path):
    """Workers reuse an evaluator across trials: "non-finite samples" belongs to the call that saw them."""
    from study.config import DataConfig, EvalConfig
    from study.data import load_dataset
    from study.eval.evaluator import Evaluator
    cfg = DataConfig(name="ring8", holdout=200, synthetic_size=2048)
    ev = Evaluator(load_dataset(cfg), cfg, EvalConfig(num_samples=100, w1_points=50, w1_draws=1), "cpu", tmp_path)
    bad = ev(torch.full((100, 2), float("nan")))
    assert math.isnan(bad["eval/w1"]) and ev.call_notes == ["non-finite samples: metrics of those evaluations are NaN"]
    ev(torch.randn(100, 2))
    assert ev.call_notes == [] and not any("non-finite" in n for n in ev.info["notes"])
