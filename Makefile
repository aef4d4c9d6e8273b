# The two commands a new user needs: `make demo` and `make test`. Both set up .venv/ first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmdfkd-setup-done
SETUP_INPUTS := requirements.txt setup.py $(wildcard scripts/*.sh)

.PHONY: setup setup-fresh test demo demo-frozen-bn-teacher demo-rednet-teacher demo-vit-teacher \
	benchmarks clean

setup: $(STAMP)

# The set-up as a fresh machine runs it: new .venv, empty mmcv wheel cache, no pip cache (~25 min).
setup-fresh:
	VENV=$(VENV) bash scripts/fresh_setup.sh

$(STAMP): $(SETUP_INPUTS)
	VENV=$(VENV) bash scripts/setup_env.sh

test: $(STAMP)
	TIMM_USE_NAFLEXVIT=0 $(PY) -m pytest tests

demo: $(STAMP)
	$(PY) tools/run_demo.py

# After `make demo` (its data): the demo teacher shaped like mmdet's (backbone pretrained on
# procedural textures, frozen BN, no norm in FPN and head), for configs/demo/*frozen_bn*.py.
demo-frozen-bn-teacher: $(STAMP)
	$(PY) tools/pretrain_backbone.py --out work_dirs/demo/proxy_backbone/resnet18_textures.pth
	$(PY) tools/train.py configs/demo/retinanet_r18_frozen_bn_shapes.py \
		--work-dir work_dirs/demo/teacher_frozen_bn

# After `make demo` (its data): the involution demo teacher (RetinaNet with a RedNet-26 backbone,
# BN trained everywhere), for the involution and two-teacher configs/demo/*rednet26*, *ensemble*.
demo-rednet-teacher: $(STAMP)
	$(PY) tools/train.py configs/demo/retinanet_rednet26_shapes.py \
		--work-dir work_dirs/demo/teacher_rednet26

# After `make demo` (its data and CNN teacher): the ViT teacher (twice the student's width, no
# BatchNorm), trained on the real train images by distillation from the CNN teacher and
# exported as a plain detector, for configs/demo/*vit256*.
demo-vit-teacher: $(STAMP)
	$(PY) tools/train.py configs/demo/kd_vit256_teacher_shapes.py \
		--work-dir work_dirs/demo/teacher_vit256
	$(PY) tools/export_student.py configs/demo/kd_vit256_teacher_shapes.py \
		work_dirs/demo/teacher_vit256/iter_800.pth --out work_dirs/demo/teacher_vit256

# After `make demo` (they use its data, teacher and bank): quality, speed, compactness, memory,
# GroupNorm or BatchNorm, Lanczos or bilinear, ONNX latency, lottery tickets (hours on a CPU).
benchmarks: $(STAMP)
	$(PY) benchmarks/quality.py
	$(PY) benchmarks/speed.py
	$(PY) benchmarks/compactness.py
	$(PY) benchmarks/memory.py
	$(PY) benchmarks/norm_batch.py
	$(PY) benchmarks/lanczos.py
	$(PY) benchmarks/deploy_latency.py
	$(PY) benchmarks/lottery_ticket.py

clean:
	rm -rf work_dirs data/demo .pytest_cache
