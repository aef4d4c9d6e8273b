"""Print the versions of python, torch, CUDA, mmcv (and its ops), mmengine, mmdet, timm and
pycocotools."""
from mmdfkd.utils.collect_env import main

if __name__ == '__main__':
    main()
