import json

from noise2score.model_card import _describe_data, add_evaluation


def _facts(**data):
    model = {"level": 0.01, "level_input": True, "level_output": True, "init_weights": "poisson-blind-color"}
    noisy = {"source": "cbsd432", "noise": "poisson", "level": 0.01, "seed": 0, "images": 432}
    return {"model": model, "data": {"patch_size": 64, **data}, "noisy_training_data": noisy}


def test_told_weights_of_one_level_say_the_level_they_were_told():
    text = _describe_data(_facts(train_dir="data/noisy/cbsd432-poisson0.01"))
    assert "told the level (an input map; 0.01 throughout)" in text and "each crop's" not in text
    assert "divided by the noise's scale" in text and "one poisson draw" in text
    assert "no clean image was used in this stage" in text


def test_told_blind_weights_say_each_crop_has_its_level():
    facts = _facts(train_dir="cbsd432", synthetic_noise="poisson", synthetic_levels=[0.005, 0.1])
    text = _describe_data(facts)
    assert "told each crop's noise level" in text and "on the fly" in text


def test_own_noisy_data_say_their_folder_and_the_level_found(tmp_path):
    facts = _facts(train_dir=str(tmp_path / "my_noisy"))
    del facts["noisy_training_data"]  # no make-noisy record
    facts["model"] = {"noise": "poisson", "level": 0.0301, "init_weights": None}
    facts["hardware"] = [{"argv": ["fit", "--model.level", "auto"]}]
    text = _describe_data(facts)
    assert text.startswith(f"the noisy images of {tmp_path / 'my_noisy'} (no make-noisy record")
    assert "poisson level 0.0301 (estimated from the images: --model.level auto)" in text
    facts["hardware"] = [{"argv": ["fit"]}]
    assert "estimated" not in _describe_data(facts)


def test_headline_rounds_the_unrounded_mean_as_results_md_does(tmp_path):
    card = tmp_path / "w.json"
    card.write_text(json.dumps({"name": "w", "headline": ""}))
    row = {"dataset": "cbsd68", "noise": "poisson zeta=0.05", "psnr": 28.30505, "ssim": 0.789812}
    add_evaluation(tmp_path / "w.safetensors", [row])
    written = json.loads(card.read_text())
    assert written["headline"] == "cbsd68 28.31 dB"  # 28.305 first, then .2f, would say 28.30
    assert written["evaluation"][0]["psnr"] == 28.305 and written["evaluation"][0]["ssim"] == 0.7898
