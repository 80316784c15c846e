"""Creates, in a freshly bootstrapped Keystone, what Heat and magnumd need (tests only).

    bootstrap_keystone.py KEYSTONE_URL ADMIN_PASSWORD SERVICE_PASSWORD HEAT_URL

Made (each only if missing, so that a second run changes nothing):
- project `service`, role `service`;
- user `heat` and user `magnum` in project `service` with roles admin and service;
- domain `heat` with `heat_domain_admin` (admin on it): Heat's stack-user domain;
- domain `magnum` with `magnum_domain_admin` (admin on it): the domain of clusters' trustees;
- service `heat` (orchestration) with its three endpoints in RegionOne.
Every user gets SERVICE_PASSWORD. Only the standard library is used.
"""

import json
import sys
import urllib.error
import urllib.request


class Keystone:
    def __init__(self, url, admin_password):
        self.url = url.rstrip("/")
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": "admin",
                            "domain": {"id": "default"},
                            "password": admin_password,
                        }
                    },
                },
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
            }
        }
        request = urllib.request.Request(
            self.url + "/v3/auth/tokens",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            self.token = response.headers["X-Subject-Token"]

    def call(self, method, path, body=None):
        request = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "X-Auth-Token": self.token},
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read()
                return json.loads(text) if text else None
        except urllib.error.HTTPError as error:
            raise SystemExit(
                "%s %s: %s %s" % (method, path, error.code, error.read().decode(errors="replace"))
            )

    def find(self, collection, key, **filters):
        query = "&".join("%s=%s" % item for item in filters.items())
        found = self.call("GET", "/v3/%s?%s" % (collection, query))[collection]
        return found[0] if found else None

    def ensure(self, collection, key, body, **filters):
        existing = self.find(collection, key, **filters)
        if existing:
            return existing
        return self.call("POST", "/v3/" + collection, {key: body})[key]


def main():
    keystone_url, admin_password, service_password, heat_url = sys.argv[1:5]
    keystone = Keystone(keystone_url, admin_password)
    roles = {
        name: keystone.ensure("roles", "role", {"name": name}, name=name)["id"]
        for name in ("admin", "member", "reader", "service")
    }
    service_project = keystone.ensure(
        "projects", "project", {"name": "service", "domain_id": "default"}, name="service"
    )
    for name in ("heat", "magnum"):
        user = keystone.ensure(
            "users",
            "user",
            {"name": name, "domain_id": "default", "password": service_password},
            name=name,
            domain_id="default",
        )
        for role in ("admin", "service"):
            keystone.call(
                "PUT",
                "/v3/projects/%s/users/%s/roles/%s"
                % (service_project["id"], user["id"], roles[role]),
            )
    for domain_name in ("heat", "magnum"):
        domain = keystone.ensure(
            "domains",
            "domain",
            {"name": domain_name, "description": "owned by the %s service" % domain_name},
            name=domain_name,
        )
        admin_name = domain_name + "_domain_admin"
        domain_admin = keystone.ensure(
            "users",
            "user",
            {"name": admin_name, "domain_id": domain["id"], "password": service_password},
            name=admin_name,
            domain_id=domain["id"],
        )
        keystone.call(
            "PUT",
            "/v3/domains/%s/users/%s/roles/%s" % (domain["id"], domain_admin["id"], roles["admin"]),
        )
    service = keystone.ensure(
        "services",
        "service",
        {"name": "heat", "type": "orchestration", "enabled": True},
        type="orchestration",
    )
    endpoint_url = heat_url.rstrip("/") + "/v1/%(tenant_id)s"
    for interface in ("public", "internal", "admin"):
        existing = keystone.find(
            "endpoints", "endpoint", service_id=service["id"], interface=interface
        )
        if not existing:
            keystone.call(
                "POST",
                "/v3/endpoints",
                {
                    "endpoint": {
                        "service_id": service["id"],
                        "interface": interface,
                        "url": endpoint_url,
                        "region_id": "RegionOne",
                    }
                },
            )


if __name__ == "__main__":
    main()
