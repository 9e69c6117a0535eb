#!/usr/bin/env python3
"""Writes the Grafana dashboard JSON of the syncer (dashboards/sync-lag.json) from the panel list below.

The JSON is committed; edit this file and run `python3 dashboards/build.py` to regenerate it.
`python3 dashboards/build.py --check` fails when the committed JSON differs from what this file produces
(dashboards/check/run.sh runs it). Python 3 standard library only.
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "sync-lag.json"

DS = {"type": "prometheus", "uid": "${datasource}"}


class Layout:
    """Places panels left to right in 24-column rows; `row()` starts a titled row."""

    def __init__(self):
        self.panels = []
        self.next_id = 1
        self.x = 0
        self.y = 0
        self.row_height = 0

    def _id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def _newline(self):
        self.y += self.row_height
        self.x = 0
        self.row_height = 0

    def row(self, title):
        if self.x:
            self._newline()
        self.panels.append(
            {
                "type": "row",
                "id": self._id(),
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def add(self, panel, w=12, h=8):
        if self.x + w > 24:
            self._newline()
        panel["id"] = self._id()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self.row_height = max(self.row_height, h)


def target(expr, legend="", ref="A", fmt=None, instant=False):
    t = {
        "refId": ref,
        "datasource": DS,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "editorMode": "code",
    }
    if fmt:
        t["format"] = fmt
    return t


def targets(*specs):
    """specs: (expr, legend) pairs; refIds A, B, C, ..."""
    return [target(e, l, ref=chr(ord("A") + i)) for i, (e, l) in enumerate(specs)]


def timeseries(title, description, tgts, unit="short", stack=False, min0=True):
    custom = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 10 if not stack else 40,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
    }
    defaults = {"unit": unit, "custom": custom}
    if min0:
        defaults["min"] = 0
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": tgts,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "showLegend": True,
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(title, description, tgts, unit="short", thresholds=None):
    steps = [{"color": "green", "value": None}]
    for value, color in thresholds or []:
        steps.append({"color": color, "value": value})
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": tgts,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": {"mode": "absolute", "steps": steps},
                "color": {"mode": "thresholds"},
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        },
    }


def heatmap(title, description, expr):
    return {
        "type": "heatmap",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": [target(expr, "{{le}}", fmt="heatmap")],
        "fieldConfig": {"defaults": {"custom": {"scaleDistribution": {"type": "linear"}}}, "overrides": []},
        "options": {
            "calculate": False,
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64, "exponent": 0.5, "fill": "dark-orange",
                      "scale": "exponential", "reverse": False},
            "exemplars": {"color": "rgba(255,0,255,0.7)"},
            "filterValues": {"le": 1e-9},
            "legend": {"show": True},
            "rowsFrame": {"layout": "auto"},
            "tooltip": {"mode": "single", "yHistogram": True, "showColorScale": False},
            "yAxis": {"axisPlacement": "left", "unit": "s", "reverse": False},
        },
    }


def bargauge(title, description, tgts, unit="short"):
    return {
        "type": "bargauge",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": tgts,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "min": 0,
                "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}]},
                "color": {"mode": "continuous-GrYlRd"},
            },
            "overrides": [],
        },
        "options": {
            "displayMode": "gradient",
            "orientation": "horizontal",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "showUnfilled": True,
            "valueMode": "color",
            "namePlacement": "auto",
            "sizing": "auto",
            "minVizHeight": 16,
            "minVizWidth": 8,
            "maxVizHeight": 300,
        },
    }


# Recorded series (dashboards/rules/vc-syncer-recording.yml).
P50 = "job_direction_kind:vc_syncer_sync_lag_seconds:p50_5m"
P99 = "job_direction_kind:vc_syncer_sync_lag_seconds:p99_5m"
RECONCILE_RATE = "job_code:vc_syncer_reconcile:rate5m"
ERROR_RATIO = "job:vc_syncer_reconcile_errors:ratio_rate5m"
BUDGET_USED = "instance:vc_syncer_log_budget_used:ratio"
VC = 'vc=~"$vc"'


def panels():
    lay = Layout()

    lay.row("Sync lag")
    lay.add(
        timeseries(
            "Sync lag p50 / p99 by direction and kind",
            "From a watch event seen by a source to the successful reconcile of its key "
            "(vc_syncer_sync_lag_seconds, 5-minute window, recorded). down = tenant to super, up = super status "
            "to tenant. The SLO line of the VcSyncerSyncLagHigh alert is p99 <= 5 s.",
            targets(
                (f"max by (direction, kind) ({P99})", "p99 {{direction}} {{kind}}"),
                (f"max by (direction, kind) ({P50})", "p50 {{direction}} {{kind}}"),
            ),
            unit="s",
        ),
        w=16,
    )
    lay.add(
        stat(
            "Worst sync lag p99 now",
            "The largest p99 over directions and kinds (5-minute window).",
            targets((f"max({P99})", "p99")),
            unit="s",
            thresholds=[(1, "yellow"), (5, "red")],
        ),
        w=8,
    )
    lay.add(
        heatmap(
            "Sync lag distribution",
            "Observations per lag bucket per interval, all directions and kinds (histogram buckets, not sampled).",
            "sum by (le) (increase(vc_syncer_sync_lag_seconds_bucket[$__rate_interval]))",
        ),
        w=24,
        h=9,
    )

    lay.row("Backlog, shards and log")
    lay.add(
        timeseries(
            "Log backlog (unapplied records)",
            "Log records appended but not yet applied, per syncer instance. The VcSyncerBacklogGrowing alert "
            "fires when it is above 1,000 and has grown for 10 minutes.",
            targets(("sum by (instance) (vc_syncer_log_backlog_records)", "{{instance}}")),
        )
    )
    lay.add(
        timeseries(
            "Log disk budget used",
            "Bytes of the unapplied backlog over --disk-budget (recorded). At 100% the sources' appends wait.",
            targets((f"{BUDGET_USED}", "{{instance}}")),
            unit="percentunit",
        )
    )
    lay.add(
        timeseries(
            "Shard queue depth",
            "Messages waiting in each shard's bounded channel (full channels push back to the log writer).",
            targets(("sum by (shard) (vc_syncer_shard_queue_depth)", "shard {{shard}}")),
        ),
        w=8,
    )
    lay.add(
        timeseries(
            "Shard pending keys",
            "Distinct work keys waiting in each shard (coalesced events count once).",
            targets(("sum by (shard) (vc_syncer_shard_pending_keys)", "shard {{shard}}")),
        ),
        w=8,
    )
    lay.add(
        timeseries(
            "Oldest unapplied entry age per shard",
            "Age of each shard's oldest unapplied log entry; compaction cannot pass it. VcSyncerShardStuck "
            "fires above 5 minutes.",
            targets(("max by (shard) (vc_syncer_checkpoint_age_seconds)", "shard {{shard}}")),
            unit="s",
        ),
        w=8,
    )
    lay.add(
        timeseries(
            "Log throughput: appended and compacted",
            "Records appended to the durable log and applied records deleted by compaction, per second.",
            targets(
                ("sum(rate(vc_syncer_log_appended_records_total[$__rate_interval]))", "appended"),
                ("sum(rate(vc_syncer_log_compacted_records_total[$__rate_interval]))", "compacted"),
            ),
            unit="ops",
        ),
        w=8,
    )
    lay.add(
        timeseries(
            "Log bytes: appended per second and backlog",
            "Bytes appended per second, and bytes of unapplied entries held against the disk budget.",
            targets(
                ("sum(rate(vc_syncer_log_appended_bytes_total[$__rate_interval]))", "appended/s"),
                ("sum(vc_syncer_log_backlog_bytes)", "backlog bytes"),
                ("sum(vc_syncer_log_disk_budget_bytes)", "disk budget"),
            ),
            unit="bytes",
        ),
        w=8,
    )
    lay.add(
        timeseries(
            "Group commit size",
            "Records committed per group commit (one sled batch + flush), p50 and p99.",
            targets(
                (
                    "histogram_quantile(0.5, sum by (le) "
                    "(rate(vc_syncer_log_group_commit_records_bucket[$__rate_interval])))",
                    "p50",
                ),
                (
                    "histogram_quantile(0.99, sum by (le) "
                    "(rate(vc_syncer_log_group_commit_records_bucket[$__rate_interval])))",
                    "p99",
                ),
            ),
        ),
        w=8,
    )
    lay.add(
        timeseries(
            "Group commit duration",
            "Duration of one group commit (batch apply + flush), p50 and p99.",
            targets(
                (
                    "histogram_quantile(0.5, sum by (le) (rate(vc_syncer_log_flush_seconds_bucket[$__rate_interval])))",
                    "p50",
                ),
                (
                    "histogram_quantile(0.99, sum by (le) (rate(vc_syncer_log_flush_seconds_bucket[$__rate_interval])))",
                    "p99",
                ),
            ),
            unit="s",
        ),
        w=8,
    )
    lay.add(
        timeseries(
            "Compaction batches",
            "Compaction batches per second (applied entries deleted together with the shard checkpoint).",
            targets(("sum(rate(vc_syncer_log_compactions_total[$__rate_interval]))", "batches")),
            unit="ops",
        ),
        w=8,
    )

    lay.row("Reconcile")
    lay.add(
        timeseries(
            "Reconcile outcomes",
            "Reconciles finished per second by code (ok or the error code), recorded over 5 minutes.",
            targets((f"sum by (code) ({RECONCILE_RATE})", "{{code}}")),
            unit="ops",
            stack=True,
        ),
        w=8,
    )
    lay.add(
        timeseries(
            "Reconcile error ratio",
            "Share of reconciles ending in an error (5-minute window; empty while nothing is reconciled). "
            "VcSyncerReconcileErrorsHigh fires above 5% for 15 minutes.",
            targets((f"{ERROR_RATIO}", "{{job}}")),
            unit="percentunit",
        ),
        w=8,
    )
    lay.add(
        timeseries(
            "Retries, coalescing and writes",
            "Reconciles scheduled again after a failure, events folded into a pending reconcile, and writes "
            "made by the reconcilers, per second.",
            targets(
                ("sum(rate(vc_syncer_retries_total[$__rate_interval]))", "retries"),
                ("sum(rate(vc_syncer_coalesced_total[$__rate_interval]))", "coalesced"),
                (
                    "sum by (side, verb) (rate(vc_syncer_reconcile_writes_total[$__rate_interval]))",
                    "writes {{side}} {{verb}}",
                ),
            ),
            unit="ops",
        ),
        w=8,
    )

    lay.row("Sources and tenants")
    lay.add(
        stat(
            "VCs up",
            "VCs (of those selected) whose every watch is established.",
            targets((f"sum(vc_syncer_tenant_up{{{VC}}})", "up")),
        ),
        w=4,
        h=6,
    )
    lay.add(
        stat(
            "VCs not up",
            "VCs (of those selected) with a watch listing, backing off or failing now. "
            "VcSyncerTenantUnreachable fires after 5 minutes.",
            targets((f"count(vc_syncer_tenant_up{{{VC}}} == 0) or vector(0)", "not up")),
            thresholds=[(1, "red")],
        ),
        w=4,
        h=6,
    )
    lay.add(
        bargauge(
            "Top 10 VCs by time not up",
            "The 10 selected VCs whose watches were not established for the largest share of the last hour.",
            [
                target(
                    f"topk(10, 1 - avg_over_time(vc_syncer_tenant_up{{{VC}}}[1h]))",
                    "{{vc}}",
                    instant=True,
                )
            ],
            unit="percentunit",
        ),
        w=16,
        h=6,
    )
    lay.add(
        bargauge(
            "Top 10 VCs by backlog",
            "The 10 selected VCs with the most log entries accepted by the shards and not applied yet "
            "(queued, backing off or in flight), now.",
            [target(f"topk(10, max by (vc) (vc_syncer_tenant_backlog_records{{{VC}}}))", "{{vc}}", instant=True)],
        ),
        w=12,
    )
    lay.add(
        bargauge(
            "Top 10 VCs by sync lag p99",
            "The 10 selected VCs with the highest 99th percentile sync lag over the last minute (both "
            "directions, bucket upper bound as computed by the syncer; 0 for a VC without syncs in that minute).",
            [
                target(
                    f"topk(10, max by (vc) (vc_syncer_tenant_sync_lag_p99_seconds{{{VC}}}))",
                    "{{vc}}",
                    instant=True,
                )
            ],
            unit="s",
        ),
        w=12,
    )
    lay.add(
        timeseries(
            "Watch events",
            "Watch events received per second by kind and cluster class (super | tenant), bookmarks excluded.",
            targets(
                (
                    "sum by (kind, cluster_class) (rate(vc_syncer_watch_events_total[$__rate_interval]))",
                    "{{cluster_class}} {{kind}}",
                )
            ),
            unit="ops",
        ),
        w=8,
    )
    lay.add(
        timeseries(
            "Watch restarts and relists",
            "Watch streams re-opened after they ended or failed, and full relists (start without a resume "
            "point, or 410 Gone), by kind, per second.",
            targets(
                (
                    "sum by (kind) (rate(vc_syncer_watch_restarts_total[$__rate_interval]))",
                    "restarts {{kind}}",
                ),
                ("sum by (kind) (rate(vc_syncer_relists_total[$__rate_interval]))", "relists {{kind}}"),
            ),
            unit="ops",
        ),
        w=8,
    )
    lay.add(
        timeseries(
            "Source anomalies",
            "Labelled super objects without tenancy marks (ignored), failed log appends in sources, and "
            "super objects left alone because their uid marks did not match, per second.",
            targets(
                ("sum by (kind) (rate(vc_syncer_source_unmapped_total[$__rate_interval]))", "unmapped {{kind}}"),
                (
                    "sum by (kind) (rate(vc_syncer_source_append_errors_total[$__rate_interval]))",
                    "append errors {{kind}}",
                ),
                ("sum by (kind) (rate(vc_syncer_uid_mismatch_total[$__rate_interval]))", "uid mismatch {{kind}}"),
            ),
            unit="ops",
        ),
        w=8,
    )
    lay.add(
        timeseries(
            "VC watch state",
            "1 while every watch of the VC is established, 0 while any is listing, backing off or failing.",
            targets((f"max by (vc) (vc_syncer_tenant_up{{{VC}}})", "{{vc}}")),
        ),
        w=24,
    )
    lay.row("Patroller")
    lay.add(
        timeseries(
            "Patrol findings",
            "Drift found by the patroller per 5 minutes, by class (missing in super, orphan in super, "
            "different) and kind. Each finding is enqueued for the reconciler, which re-checks live.",
            targets(
                (
                    "sum by (kind, class) (increase(vc_syncer_patrol_findings_total[5m]))",
                    "{{class}} {{kind}}",
                )
            ),
        ),
        w=8,
    )
    lay.add(
        timeseries(
            "Patrol repairs",
            "Work keys the patroller enqueued for repair, and repairs deferred because the shard stayed busy "
            "(found again next pass), per 5 minutes.",
            targets(
                ("sum by (kind) (increase(vc_syncer_patrol_repairs_enqueued_total[5m]))", "enqueued {{kind}}"),
                ("sum by (kind) (increase(vc_syncer_patrol_repairs_deferred_total[5m]))", "deferred {{kind}}"),
            ),
        ),
        w=8,
    )
    lay.add(
        stat(
            "Since the last patrol pass",
            "Time since the last patrol pass finished (a pass runs every --patrol-interval, default 60 s). "
            "VcSyncerPatrolStalled fires above 15 minutes.",
            targets(("time() - max(vc_syncer_patrol_last_pass_timestamp_seconds)", "since last pass")),
            unit="s",
            thresholds=[(180, "yellow"), (900, "red")],
        ),
        w=8,
    )
    lay.add(
        timeseries(
            "Patrol pass duration",
            "Duration of one patrol pass (view walk of every kind, plus the super LIST every Nth pass), "
            "p50 and p99 over 10 minutes.",
            targets(
                (
                    "histogram_quantile(0.5, sum by (le) (rate(vc_syncer_patrol_pass_seconds_bucket[10m])))",
                    "p50",
                ),
                (
                    "histogram_quantile(0.99, sum by (le) (rate(vc_syncer_patrol_pass_seconds_bucket[10m])))",
                    "p99",
                ),
            ),
            unit="s",
        ),
        w=8,
    )
    lay.add(
        timeseries(
            "Objects compared per pass",
            "Objects the patroller compared per pass over the last 10 minutes, by kind and side.",
            targets(
                (
                    "sum by (kind, side) (increase(vc_syncer_patrol_objects_scanned_total[10m])) "
                    "/ scalar(sum(increase(vc_syncer_patrol_pass_seconds_count[10m])))",
                    "{{side}} {{kind}}",
                )
            ),
        ),
        w=8,
    )
    lay.add(
        timeseries(
            "View corrections and patrol errors",
            "Records the super LIST appended because the view was stale (a missed watch event), by event; "
            "failed super LISTs and view walks, by stage; per 5 minutes.",
            targets(
                (
                    "sum by (kind, event) (increase(vc_syncer_patrol_view_corrections_total[5m]))",
                    "corrected {{event}} {{kind}}",
                ),
                (
                    "sum by (kind, stage) (increase(vc_syncer_patrol_errors_total[5m]))",
                    "errors {{stage}} {{kind}}",
                ),
            ),
        ),
        w=8,
    )
    return lay.panels


def dashboard():
    return {
        "title": "VirtualCluster syncer: sync lag, backlog and reconcile",
        "uid": "vc-syncer-sync-lag",
        "description": "Sync lag, log backlog, shards, reconcile outcomes and watch health of the VirtualCluster "
        "syncer (metrics vc_syncer_*; recording rules in dashboards/rules).",
        "tags": ["virtualcluster", "syncer"],
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "weekStart": "",
        "links": [],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "includeAll": False,
                    "multi": False,
                    "options": [],
                    "refresh": 1,
                    "regex": "",
                    "skipUrlSync": False,
                },
                {
                    "name": "vc",
                    "label": "VC",
                    "type": "query",
                    "datasource": DS,
                    "definition": "label_values(vc_syncer_tenant_up, vc)",
                    "query": {
                        "qryType": 1,
                        "query": "label_values(vc_syncer_tenant_up, vc)",
                        "refId": "PrometheusVariableQueryEditor-VariableQuery",
                    },
                    "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                    "hide": 0,
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": True,
                    "options": [],
                    "refresh": 2,
                    "regex": "",
                    "skipUrlSync": False,
                    "sort": 1,
                },
            ]
        },
        "panels": panels(),
    }


def render():
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv):
    text = render()
    if "--check" in argv:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is not what dashboards/build.py generates: run python3 dashboards/build.py", file=sys.stderr)
            return 1
        print(f"{OUT.name} is up to date")
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
