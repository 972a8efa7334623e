"""optarena's core. The package path is extended like a namespace package's, so that a job kind
shipped elsewhere on the Python path (core/kinds/<kind>) is found as well."""

import pkgutil

__path__ = pkgutil.extend_path(__path__, __name__)
