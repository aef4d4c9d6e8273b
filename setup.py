"""mmdfkd: data-free knowledge distillation of object detectors into compact ViT students."""
import os.path as osp

from setuptools import find_packages, setup


def read_version() -> str:
    scope: dict = {}
    with open(osp.join(osp.dirname(__file__), 'mmdfkd', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='mmdfkd',
    version=read_version(),
    description='Data-free knowledge distillation of MMDetection detectors into ViT students',
    long_description=open(osp.join(osp.dirname(__file__), 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmdfkd', 'mmdfkd.*']),
    python_requires='>=3.9',
    # Ranges only: requirements.txt pins the verified stack, and `make setup` installs it
    # (mmcv has to be built from source there, see scripts/build_mmcv.sh).
    install_requires=[
        'torch>=2.0',
        'torchvision',
        'mmengine>=0.10.0,<1.0',
        'mmcv>=2.0.0,<2.2.0',
        'mmdet>=3.2.0,<3.4.0',
        'timm>=1.0.3',
        'pycocotools',
        'numpy',
    ],
    extras_require={'tests': ['pytest']},
    license='Apache-2.0',
    zip_safe=False,
)
