# Runtime of every demo run: mmdet's default runtime, logs and checkpoints counted in iterations,
# checkpoints written atomically.
_base_ = 'mmdet::_base_/default_runtime.py'

# mmdfkd registers the ViT student's modules, the synthesis hook, the synthetic datasets and the
# 'atomic_local' file backend used below.
custom_imports = dict(imports=['mmdfkd'], allow_failed_imports=False)

default_hooks = dict(
    logger=dict(interval=20),
    # 'atomic_local' writes a checkpoint to a temporary file and renames it, so a run killed
    # while saving leaves no truncated .pth behind.
    checkpoint=dict(by_epoch=False, backend_args=dict(backend='atomic_local')))
log_processor = dict(by_epoch=False)
