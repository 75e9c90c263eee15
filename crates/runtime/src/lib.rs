//! The OCI runtime: lifecycle, namespaces, cgroups and the root filesystem (runtime-spec).
