terraform {
  # No provider: this module only renders files, so tests can run it offline.
  required_version = ">= 1.9"
}
