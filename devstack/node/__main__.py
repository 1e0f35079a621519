"""The local Kubernetes node: `python -m devstack.node COMMAND` (see --help)."""

from __future__ import annotations

import argparse
import json
import sys

from devstack.node import gobuild, images, node
from devstack.node.components import NodeError
from devstack.node.layout import NodeLayout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.node", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the node's programs from the Go module proxy")
    build.add_argument(
        "programs", nargs="*", help="only these (kube, etcd, skaffold...); default all"
    )
    commands.add_parser("up", help="start the node (builds what is missing) and CoreDNS")
    down = commands.add_parser("down", help="stop the node and remove what it left behind")
    down.add_argument("--purge", action="store_true", help="also drop its certificates and images")
    commands.add_parser("status", help="pids of the node's components (null: not running)")
    load = commands.add_parser("load-images", help="import Docker images into the node")
    load.add_argument("tags", nargs="*", help="default: the chart's images (devstack.node.images)")
    commands.add_parser("kubeconfig", help="print the admin kubeconfig's path")
    commands.add_parser("bin-dir", help="print the folder of the built programs (kubelet...)")
    commands.add_parser("skaffold-path", help="build skaffold and its Helm 3; print their folder")
    args = parser.parse_args(argv)
    layout = NodeLayout.from_env()
    try:
        if args.command == "build":
            gobuild.ensure(args.programs or None)
        elif args.command == "up":
            node.up(layout)
        elif args.command == "down":
            node.down(layout, purge=args.purge)
        elif args.command == "status":
            sys.stdout.write(json.dumps(node.status(layout), indent=2) + "\n")
        elif args.command == "load-images":
            node.load_images(layout, args.tags or list(images.IMAGES))
        elif args.command == "skaffold-path":
            sys.stdout.write(f"{gobuild.skaffold_path()}\n")
        elif args.command == "bin-dir":
            sys.stdout.write(f"{gobuild.bin_dir()}\n")
        else:
            sys.stdout.write(f"{layout.admin_kubeconfig}\n")
    except NodeError as error:
        sys.stderr.write(f"[node] {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
