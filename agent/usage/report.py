"""Usage reports: the ledger's entries between two UTC days, summed by key (and by day), as rows for JSON or
CSV. A report reads one store entry list per day, so its range is capped (`MAX_DAYS`)."""

from __future__ import annotations

import csv
import datetime
import io

from pydantic import BaseModel, ConfigDict, Field

from agent.errors import RequestParamsError
from agent.stores.usage import UsageEntry, UsageLedger, Used

MAX_DAYS = 366  # a year and a day: a report reads a day's entries at a time


class Totals(Used):
    tasks: int = 0

    def add(self, entry: UsageEntry) -> None:
        self.tasks += 1
        self.queue_seconds += entry.queue_seconds
        self.gpu_seconds += entry.gpu_seconds
        self.model_seconds += entry.model_seconds
        self.input_bytes += entry.input_bytes
        self.output_bytes += entry.output_bytes
        if entry.cost is not None:
            self.cost = (self.cost or 0.0) + entry.cost

    def rounded(self) -> Totals:
        return self.model_copy(update={"queue_seconds": round(self.queue_seconds, 4),
                                       "gpu_seconds": round(self.gpu_seconds, 4),
                                       "model_seconds": round(self.model_seconds, 4),
                                       "cost": None if self.cost is None else round(self.cost, 6)})


class Row(Totals):
    key: str
    day: str | None = None


class Report(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    group: str
    rows: list[Row]
    totals: Totals


def day_range(start: str | None, end: str | None, today: datetime.date) -> list[str]:
    """The days from `start` to `end` (ISO dates, both kept; by default the month so far)."""
    try:
        last = datetime.date.fromisoformat(end) if end is not None else today
        first = datetime.date.fromisoformat(start) if start is not None else last.replace(day=1)
    except ValueError:
        raise RequestParamsError("from and to are days: YYYY-MM-DD (UTC)") from None
    count = (last - first).days + 1
    if not 1 <= count <= MAX_DAYS:
        raise RequestParamsError(f"from must be on or before to, at most {MAX_DAYS} days apart")
    return [(first + datetime.timedelta(days=n)).isoformat() for n in range(count)]


async def report(ledger: UsageLedger, days: list[str], key: str | None, by_day: bool) -> Report:
    rows: dict[tuple[str, str | None], Row] = {}
    totals = Totals()
    for day in days:
        for entry in await ledger.entries(day):
            if key is not None and entry.key != key:
                continue
            group = (entry.key, day if by_day else None)
            rows.setdefault(group, Row(key=entry.key, day=group[1])).add(entry)
            totals.add(entry)
    ordered = [rows[group].rounded() for group in sorted(rows, key=lambda group: (group[1] or "", group[0]))]
    return Report(from_=days[0], to=days[-1], group="day" if by_day else "key", rows=ordered,
                  totals=totals.rounded())


CSV_FIELDS = ["key", "day", "tasks", "queue_seconds", "gpu_seconds", "model_seconds", "input_bytes", "output_bytes",
              "cost"]


def as_csv(made: Report) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in made.rows:
        writer.writerow({field: "" if value is None else value for field, value in row.model_dump().items()})
    return out.getvalue()
