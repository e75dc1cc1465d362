"""Files shipped with the package: the Dockerfiles of the proxy's images and the
configuration template of its front."""
