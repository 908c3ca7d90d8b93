# shellcheck shell=bash
# Sourced by install.sh, build-deb.sh and test-deb-install.sh. pip builds inside the source
# tree (build/, *.egg-info), so every build works on a copy of the checkout made by this.

# copy_source SRC DEST: the checkout SRC into the existing folder DEST, without git, venvs,
# build output, caches and model binaries.
copy_source() {
    tar -C "$1" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
        --exclude='*.egg-info' --exclude=.pytest_cache --exclude=.ruff_cache --exclude=.mypy_cache \
        --exclude=__pycache__ --exclude='./models/*.tflite' --exclude='./models/*.part' \
        -cf - . | tar -C "$2" -xf -
}
