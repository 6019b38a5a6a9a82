"""The composition root: one object that opens the stores once, builds every service in the order they need each
other (each handed the collaborators it uses, by name: none receives this object), and hands the same services to
the HTTP API, the CLI and the web UI, so none of them holds logic of its own."""

from __future__ import annotations

import json
import os
import secrets

from taehwa.academy.service import AcademyService
from taehwa.analytics.program import check_plant
from taehwa.analytics.service import AnalyticsService
from taehwa.city.compute import ComputeLedger, QuotaGuard
from taehwa.city.consents import ConsentBook
from taehwa.city.figures import FIGURES
from taehwa.city.policy import PolicyBook
from taehwa.city.rates import SiteRates
from taehwa.city.release import ReleaseGate
from taehwa.city.service import CITY_TENANT, CityService
from taehwa.connectors.service import ConnectorService
from taehwa.core.paths import dev_token_path, server_info_path
from taehwa.core.settings import Settings
from taehwa.flight import FlightService
from taehwa.historian.store import Historian
from taehwa.lab.labels import LabelService
from taehwa.lab.service import LabService
from taehwa.live.service import LiveService
from taehwa.migrate import make_engine
from taehwa.server.overview import Overview
from taehwa.sharing.grants import SharingService
from taehwa.sqlport.server import SqlPort
from taehwa.sqlport.session import Limits
from taehwa.tenancy.access import Principal
from taehwa.tenancy.audit import open_audit
from taehwa.tenancy.files import FileRoots
from taehwa.tenancy.identity import IdentityService
from taehwa.tenancy.tenants import TenantService
from taehwa.twin.service import TwinService

BOOTSTRAP_ADMIN = "admin"  # the caller the bootstrap token (TAEHWA_API_TOKEN or the dev token) stands for


class Platform:
    """Settings plus the services built from them."""

    def __init__(
        self, settings: Settings, *, readonly: bool = False, background: bool = True, follow: bool = False
    ) -> None:
        """`readonly`: a reader beside the server (the CLI); `follow`: a reader that keeps up with the server's
        writes (an API worker of `taehwa serve --workers N`)."""
        self.settings = settings
        readonly = readonly or follow
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # other local users see nothing
        self.engine = make_engine(settings.metadata_url)  # metadata, audit and tenancy first: the historian uses them
        try:
            self.audit = open_audit(self.engine, settings)
            self.tenants = TenantService(self.engine, self.audit)
            self.historian = Historian(
                settings,
                self.engine,
                audit=self.audit,
                tenants=self.tenants,
                readonly=readonly,
                background=background,
                follow=follow,
            )
        except BaseException:  # e.g. a second writer refused: nothing stays open
            self.engine.dispose()
            raise
        self.identity = IdentityService(self.engine, self.audit)
        self.sharing = SharingService(self.engine, self.historian, self.tenants, self.audit)
        self.files = FileRoots(settings)
        self.twin = TwinService(
            settings, self.historian, engine=self.engine, tenants=self.tenants, audit=self.audit, checks=(check_plant,)
        )
        if follow or not readonly:  # the server and its followers fold every point in; a one-off reader (a CLI
            self.twin.preload()  # command beside the server) loads a tenant's plant when it asks for it, current then
        self.analytics = AnalyticsService(
            engine=self.engine,
            historian=self.historian,
            twin=self.twin,
            tenants=self.tenants,
            audit=self.audit,
            live=not readonly,
        )
        self.labels = LabelService(
            self.engine, self.tenants, self.audit, listeners=(self.analytics.sources.labels_changed,)
        )
        self.city_policy = PolicyBook(self.engine, self.tenants, self.audit, CITY_TENANT)  # the quotas the lab honours
        self.compute = ComputeLedger(self.engine, settings.data_dir / "lab")
        self.quotas = QuotaGuard(self.compute, self.city_policy)
        self.lab = LabService(
            settings,
            engine=self.engine,
            historian=self.historian,
            tenants=self.tenants,
            audit=self.audit,
            twin=self.twin,
            labels=self.labels,
            files=self.files,
            quota=self.quotas.check,
            events=self.analytics.events,
        )
        self.connectors = ConnectorService(
            self.engine, self.tenants, self.audit, self.historian, settings.data_dir / "connectors", files=self.files
        )
        self.live = LiveService(
            engine=self.engine,
            historian=self.historian,
            tenants=self.tenants,
            audit=self.audit,
            twin=self.twin,
            lab=self.lab,
            alert_follower=self.analytics.sources,
        )
        self.overview = Overview(
            historian=self.historian, tenants=self.tenants, twin=self.twin, alerts=self.live.alerts, lab=self.lab
        )
        self.academy = AcademyService(
            settings,
            engine=self.engine,
            tenants=self.tenants,
            audit=self.audit,
            sharing=self.sharing,
            identity=self.identity,
            data=self.lab,
        )
        self.city = CityService(
            city=CITY_TENANT,
            engine=self.engine,
            tenants=self.tenants,
            twin=self.twin,
            consents=ConsentBook(self.engine, self.tenants, self.audit, self.twin, tuple(FIGURES)),
            policy=self.city_policy,
            gate=ReleaseGate(self.engine, self.audit, CITY_TENANT),
            alerts=self.live.alerts,
            deployments=self.live.deployments,
            lab=self.lab,
            rates=SiteRates(self.historian, self.twin.live),
            ledger=self.compute,
            quotas=self.quotas,
        )
        if background and not readonly:
            self.twin.start()
            self.analytics.start()
            self.academy.resume()
        self.api_token = self._token()

    def _token(self) -> str:
        """The API bearer token: from the settings, else a development token kept in the data directory."""
        if self.settings.api_token is not None:
            return self.settings.api_token.get_secret_value()
        path = dev_token_path(self.settings)
        if path.exists():
            return path.read_text().strip()
        token = "dev-" + secrets.token_urlsafe(24)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token)
        return token

    def authenticate(self, token: str, source: str | None = None) -> Principal:
        """The caller a bearer token stands for: the bootstrap admin token, or a user's API token."""
        if secrets.compare_digest(token.encode(), self.api_token.encode()):
            return Principal(BOOTSTRAP_ADMIN, platform_admin=True, source=source)
        return self.identity.authenticate(token, source=source)

    def sql_port(self) -> SqlPort:
        """The SQL port over this platform's services (`taehwa serve --sql-port`); started by the caller."""
        s = self.settings
        return SqlPort(
            historian=self.historian,
            twin=self.twin,
            alerts=self.live.alerts,
            tenants=self.tenants,
            identity=self.identity,
            audit=self.audit,
            authenticate=self.authenticate,
            limits=Limits(max_rows=s.max_query_points, threads=s.duckdb_threads),
            tls_cert=s.tls_cert if s.tls_key else None,
            tls_key=s.tls_key if s.tls_cert else None,
        )

    def flight(self, host: str, port: int) -> FlightService:
        """The Arrow Flight endpoint over this platform's historian (`taehwa serve --flight-port`)."""
        s = self.settings
        tls = (s.tls_cert.read_bytes(), s.tls_key.read_bytes()) if s.tls_cert and s.tls_key else None
        scheme = "grpc+tls" if tls else "grpc+tcp"
        return FlightService(
            f"{scheme}://{host}:{port}",
            historian=self.historian,
            tenants=self.tenants,
            authenticate=self.authenticate,
            max_put_bytes=s.max_body_bytes,
            tls=tls,
        )

    def announce(self, url: str) -> None:
        """Tell local CLI processes where the running server listens (they send writes there), and, as one of
        several writers by tenant, the other nodes (its leases name where its tenants are served)."""
        server_info_path(self.settings).write_text(json.dumps({"url": url, "pid": os.getpid()}))
        if self.historian.leases.tenants is not None:
            self.historian.leases.set_url(self.settings.public_url or url)

    def close(self) -> None:
        """Flush and release everything."""
        server_info_path(self.settings).unlink(missing_ok=True)
        self.connectors.close()
        self.academy.close_service()
        self.live.close()
        self.analytics.close()
        self.twin.close()
        self.historian.close()
