# AsyncAPI tooling. Included from the top Makefile.
#
#   make asyncapi-tools   install the pinned official parser, @asyncapi/parser, from the npm
#                         registry into .tools/asyncapi (once; node and npm come with the machine)
#
# tests/test_asyncapi.py validates `gateway asyncapi` documents with it through
# tests/asyncapi/validate.mjs (or with the install at $ASYNCAPI_PARSER_DIR).

ASYNCAPI_PARSER_VERSION := 3.6.6
ASYNCAPI_DIR := .tools/asyncapi
# What `make test` depends on: the parser's installed package.json.
ASYNCAPI_TOOLS := $(ASYNCAPI_DIR)/node_modules/@asyncapi/parser/package.json

.PHONY: asyncapi-tools

asyncapi-tools: $(ASYNCAPI_TOOLS)

$(ASYNCAPI_TOOLS): tools/asyncapi.mk
	@command -v npm >/dev/null || { echo "npm is needed for the AsyncAPI parser"; exit 1; }
	@mkdir -p $(ASYNCAPI_DIR)
	@test -f $(ASYNCAPI_DIR)/package.json || echo '{"name": "gateway-asyncapi-tools", "private": true}' > $(ASYNCAPI_DIR)/package.json
	npm install --prefix $(ASYNCAPI_DIR) --no-audit --no-fund --save-exact --loglevel=error \
		@asyncapi/parser@$(ASYNCAPI_PARSER_VERSION)
	@touch $@
