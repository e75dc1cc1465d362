# The project's own images. `orchestrate bake --profile example` applies the proxy or
# cache-mount wiring to every target; `orchestrate bake --print` exports it as an
# override for plain `docker buildx bake -f docker-bake.hcl -f override.json`.

variable "BASE_IMAGE" {
  # scripts/setup prepares this tag (from a registry, or debootstrap without one).
  default = "orchestrator/base:bookworm"
}

variable "PROXPI_VERSION" {
  default = "1.4.0a1"
}

group "default" {
  targets = ["example"]
}

group "examples" {
  targets = ["example", "seed"]
}

group "all" {
  targets = ["proxpi", "example", "seed"]
}

# The caching PyPI proxy, built locally where no registry serves epicwink/proxpi.
target "proxpi" {
  context    = "orchestrator/resources/proxpi"
  dockerfile = "Dockerfile"
  args = {
    BASE_IMAGE     = BASE_IMAGE
    PROXPI_VERSION = PROXPI_VERSION
  }
  # Networks that intercept TLS: the host's bundle, as a secret, never a layer.
  secret = ["id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt"]
  labels = { "io.orchestrator.owner" = "orchestrator" }
  tags   = ["orchestrator/proxpi:${PROXPI_VERSION}"]
}

target "example" {
  context = "examples/example"
  target  = "runtime"
  args    = { BASE_IMAGE = BASE_IMAGE }
  tags    = ["orchestrator/example:latest"]
}

target "seed" {
  context = "examples/seed"
  args    = { BASE_IMAGE = BASE_IMAGE }
  tags    = ["orchestrator/seed:latest"]
}
