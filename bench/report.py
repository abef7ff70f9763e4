"""Turn workload medians into table rows with ratios and PASS/FAIL (pure logic)."""


def ratio_for(row, ours, theirs):
    """How many times better ours is (>1: ours better)."""
    if ours is None or theirs is None or ours <= 0 or theirs <= 0:
        return None
    return theirs / ours if row.lower else ours / theirs


def verdict(row, target, ours, ours_metrics, ratio):
    if target is None or ours is None:
        return ''
    if target.kind == 'speedup':
        return '' if ratio is None else ('PASS' if ratio >= target.value else 'FAIL')
    if target.kind == 'max':
        return 'PASS' if ours <= target.value else 'FAIL'
    if target.kind == 'min':
        return 'PASS' if ours >= target.value else 'FAIL'
    if target.kind == 'floor':
        floor = ours_metrics.get(target.other)
        return '' if not floor else ('PASS' if ours <= target.value * floor else 'FAIL')
    raise ValueError('unknown target kind %r' % target.kind)


def describe_target(target):
    if target is None:
        return ''
    if target.kind == 'speedup':
        return 'no slower' if target.value == 1 else '>= %gx' % target.value
    if target.kind == 'max':
        return '<= %s' % format_value(target.value, 'x_s')
    if target.kind == 'min':
        return '>= %g' % target.value
    return '<= %gx plain' % target.value


def judge(workloads, results):
    """One dict per row: labels, values, ratio, target, verdict or note."""
    by_name = {r['name']: r for r in results}
    rows = []
    for workload in workloads:
        result = by_name.get(workload.name)
        if result is None:
            continue
        for row in workload.rows:
            entry = {'issue': row.issue, 'label': row.label, 'metric': row.metric,
                     'workload': workload.name, 'target': describe_target(row.target)}
            if 'unavailable' in result and not result.get('median'):
                entry['note'] = 'not available yet (%s)' % ', '.join(result['unavailable'])
                rows.append(entry)
                continue
            medians = result['median']
            ours_metrics = medians.get('ours', {})
            ours = ours_metrics.get(row.metric)
            theirs = medians.get('durus43', {}).get(row.metric)
            entry['ours'] = ours
            entry['durus43'] = theirs
            entry['ratio'] = ratio_for(row, ours, theirs)
            entry['verdict'] = verdict(row, row.target, ours, ours_metrics, entry['ratio'])
            if row.target is not None and row.target.kind == 'floor' and ours:
                floor = ours_metrics.get(row.target.other)
                if floor:
                    entry['note'] = '%.2fx plain' % (ours / floor)
            if theirs is None and row.reference:
                name, metric, what = row.reference
                ref = by_name.get(name, {}).get('median', {}).get('durus43', {})
                if metric in ref:
                    entry['durus43'] = ref[metric]
                    entry['note'] = what
                    if row.target is not None and row.target.kind == 'speedup':
                        entry['ratio'] = ratio_for(row, ours, ref[metric])
                        entry['verdict'] = verdict(row, row.target, ours,
                                                   ours_metrics, entry['ratio'])
            if 'unavailable' in result:
                entry['note'] = 'ours not available yet'
            errors = result.get('errors', {})
            if errors:
                entry['note'] = '; '.join('%s %s' % item for item in sorted(errors.items()))
                if 'ours' in errors:
                    entry['verdict'] = 'ERROR'
            rows.append(entry)
    return rows


def format_value(value, metric):
    if value is None:
        return '-'
    if metric.endswith('_ns'):
        return '%.1f ns' % value
    if metric.endswith('_per_s'):
        return '{:,.0f}/s'.format(value)
    if metric.endswith('_s'):
        if value < 1e-3:
            return '%.1f us' % (value * 1e6)
        if value < 1:
            return '%.1f ms' % (value * 1e3)
        return '%.2f s' % value
    return '%.4g' % value


def format_table(rows):
    header = ('issue', 'workload', 'ours', 'durus 4.3', 'better by', 'target', 'result')
    lines = []
    for r in rows:
        ratio = r.get('ratio')
        lines.append((str(r['issue']), r['label'],
                      format_value(r.get('ours'), r['metric']) if 'ours' in r else '',
                      format_value(r.get('durus43'), r['metric']) if 'ours' in r else '',
                      '%.2fx' % ratio if ratio else '',
                      r['target'],
                      ' '.join(x for x in (r.get('verdict', ''), r.get('note', '')) if x)))
    widths = [max(len(str(line[i])) for line in lines + [header]) for i in range(len(header))]
    out = [' | '.join(h.ljust(w) for h, w in zip(header, widths)),
           '-+-'.join('-' * w for w in widths)]
    for line in lines:
        out.append(' | '.join(str(c).ljust(w) for c, w in zip(line, widths)))
    return '\n'.join(out)
