# ferry — the two commands: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

run: ## start the local stack and ferry local, send a sample file, stay up (Ctrl-C stops)
	@scripts/run.sh

test: test-unit test-integration test-demo ## unit tests, integration tests on a fresh local stack, then `make run`'s demo

test-unit: ## tests that need no services
	go vet ./...
	go test -count=1 ./...

test-integration: ## tests against the local stack (started on free ports)
	scripts/test-integration.sh

test-demo: ## `make run`'s demo to its end, as a newcomer's first run: free ports, a fresh state dir
	scripts/test-demo.sh

bench: ## benchmarks: load (1,000 transfers, with the cost table) and S3→S3 through ferry local vs the SDK; MESH sends vs NHS mesh-client (args: make bench ARGS='-bench Load')
	scripts/bench.sh $(ARGS)

build: ## build bin/ferry and bin/bootstrap (the Lambda binary)
	go build -o bin/ferry ./cmd/ferry
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -o bin/bootstrap ./functions/bootstrap

check-infra: ## cfn-lint, checkov, sam validate --lint and an offline sam build of infra/template.yaml
	scripts/check-infra.sh

deploy: ## sam build, then sam deploy --guided with your AWS credentials (README: Deploying)
	scripts/deploy.sh $(ARGS)

deploy-console: ## upload the web console and its config.json to the deployed stack's bucket (README: Console)
	scripts/deploy-console.sh $(ARGS)

lint: ## gofmt, go vet, staticcheck, and go.mod tidy
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...
	go vet -tags integration ./...
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 -tags integration ./...
	go mod tidy -diff

clean: ## stop nothing, delete build output and the local state
	rm -rf bin .ferry

.PHONY: help run test test-unit test-integration test-demo bench build lint check-infra deploy deploy-console clean
