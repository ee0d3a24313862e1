"""The real Kubernetes control plane the tests run against: build, find and start it.

`build.sh` builds kube-apiserver, etcd, kubectl and helm from the Go modules beside it;
`launcher.ControlPlane` starts etcd and kube-apiserver on loopback.
"""
