"""Compare two API descriptions made by api_dump.py (Durus 4.3's, ours).

`compare(theirs, ours)` returns (present, total, differences): how many of
4.3's public names (module-level names and class members) exist here, and
one (where, message) pair for everything that is missing or accepts fewer
call forms than in 4.3.
"""

POSITIONAL = ('POSITIONAL_ONLY', 'POSITIONAL_OR_KEYWORD')
KEYWORD = ('POSITIONAL_OR_KEYWORD', 'KEYWORD_ONLY')


def signature_problems(theirs, ours):
    """Why a callable with signature `ours` rejects a call that one with
    signature `theirs` accepts; [] when every call form carries over."""
    if theirs is None or ours is None:
        return []       # a C callable without a signature: nothing to compare
    problems = []
    our_var_positional = any(kind == 'VAR_POSITIONAL' for _, kind, _, _ in ours)
    our_var_keyword = any(kind == 'VAR_KEYWORD' for _, kind, _, _ in ours)
    our_positional = [p for p in ours if p[1] in POSITIONAL]
    our_by_name = {p[0]: p for p in ours if p[1] in KEYWORD}
    their_positional = [p for p in theirs if p[1] in POSITIONAL]
    renamed = set()
    for index, (name, kind, default, has_default) in enumerate(their_positional):
        if index < len(our_positional):
            ours_here = our_positional[index]
            if ours_here[0] != name:
                # Positional-only in 4.3: only the position matters.
                if kind == 'POSITIONAL_OR_KEYWORD' and not our_var_keyword:
                    problems.append('argument %d is %r, 4.3 calls it %r'
                                    % (index + 1, ours_here[0], name))
                renamed.update((name, ours_here[0]))
            if has_default and not ours_here[3]:
                problems.append('%r is required, optional in 4.3' % name)
        elif not our_var_positional:
            problems.append('no positional argument %d (%r)' % (index + 1, name))
    for index, (name, kind, default, has_default) in enumerate(theirs):
        ours_named = our_by_name.get(name)
        # A method's instance by keyword (Class.method(self=obj)) is no call
        # form callers use, and a compiled method cannot take it that way.
        bound_instance = index == 0 and name == 'self' and bool(ours) \
            and ours[0][0] == 'self'
        if kind in KEYWORD and ours_named is None and not our_var_keyword \
                and name not in renamed and not bound_instance:
            problems.append('no keyword argument %r' % name)
        if (kind in KEYWORD and ours_named and has_default and ours_named[3]
                and ours_named[2] != default and not default.startswith('<')):
            problems.append('%r defaults to %s, in 4.3 to %s'
                            % (name, ours_named[2], default))
        if kind == 'KEYWORD_ONLY' and has_default and ours_named \
                and not ours_named[3]:
            problems.append('%r is required, optional in 4.3' % name)
        if kind == 'VAR_POSITIONAL' and not our_var_positional:
            problems.append('no *%s' % name)
        if kind == 'VAR_KEYWORD' and not our_var_keyword:
            problems.append('no **%s' % name)
    their_names = {p[0] for p in theirs}
    for index, (name, kind, default, has_default) in enumerate(ours):
        if (kind not in ('VAR_POSITIONAL', 'VAR_KEYWORD') and not has_default
                and name not in their_names and name not in renamed):
            problems.append('requires %r, which 4.3 does not' % name)
    return problems


def kind_problem(theirs, ours):
    """A member whose kind changed in a way callers notice."""
    callable_kinds = ('method', 'staticmethod', 'classmethod', 'function',
                      'class')
    their_kind, our_kind = theirs['kind'], ours['kind']
    if their_kind == our_kind:
        return None
    if their_kind in callable_kinds and our_kind not in callable_kinds:
        return 'a %s in 4.3, a %s here' % (their_kind, our_kind)
    if their_kind == 'property' and our_kind not in ('property', 'attribute'):
        return 'a property in 4.3, a %s here' % our_kind
    if their_kind in ('staticmethod', 'classmethod') and our_kind == 'method':
        return 'a %s in 4.3, an instance method here' % their_kind
    return None


def compare_callable(where, theirs, ours, differences):
    for problem in signature_problems(theirs.get('signature'),
                                      ours.get('signature')):
        differences.append((where, 'signature: ' + problem))


def compare_value(where, theirs, ours, differences):
    if (theirs.get('value') is not None and ours.get('value') is not None
            and theirs['value'] != ours['value']):
        differences.append((where, 'is %s, in 4.3 %s'
                            % (ours['value'], theirs['value'])))


def is_special(name):
    return name.startswith('__') and name.endswith('__')


def compare_class(where, theirs, ours, differences):
    """Returns how many of the class's members exist here."""
    for base in theirs['bases']:
        if base not in ours['bases']:
            differences.append((where, 'is not a subclass of %s' % base))
    for interface in theirs['interfaces']:
        if interface not in ours['interfaces']:
            differences.append((where, 'is not a collections.abc.%s'
                                % interface))
    compare_callable(where + '()', theirs, ours, differences)
    present = 0
    for name, their_member in sorted(theirs['members'].items()):
        member_where = '%s.%s' % (where, name)
        our_member = ours['members'].get(name)
        if our_member is None:
            # A special method inherited from object (such as
            # __setattr__, which 4.3 defines in C) still answers calls.
            if is_special(name) and name in ours['all_names']:
                present += 1
            else:
                differences.append((member_where, 'missing'))
            continue
        present += 1
        problem = kind_problem(their_member, our_member)
        if problem:
            differences.append((member_where, problem))
            continue
        compare_callable(member_where, their_member, our_member, differences)
        compare_value(member_where, their_member, our_member, differences)
    return present


def is_foreign(entry):
    """A name 4.3's module imported from outside durus for its own use
    (os.getpid, heapq.heappush...): the standard library's, not durus API."""
    origin = entry.get('origin')
    return bool(origin) and origin.split('.')[0] != 'durus'


class Comparison:
    """present/total over 4.3's public names; `differences` lists
    (where, message); `foreign_missing` the standard-library names 4.3's
    modules imported that are not re-exported here."""

    def __init__(self):
        self.present = self.total = 0
        self.differences = []
        self.foreign_missing = []


def compare(theirs, ours):
    result = Comparison()
    differences = result.differences
    for module, their_module in sorted(theirs.items()):
        if 'error' in their_module:
            continue        # 4.3 itself cannot import it on this Python
        our_module = ours.get(module, {'error': 'not compared'})
        for name, their_entry in sorted(their_module['names'].items()):
            if their_entry['kind'] == 'module':
                continue    # an imported module (os, sys...), not API
            where = '%s.%s' % (module, name)
            result.total += 1
            if not is_foreign(their_entry):
                # A standard-library class counts as one name, not with
                # its members.
                result.total += len(their_entry.get('members', ()))
            if 'error' in our_module:
                differences.append((where, 'missing: module cannot be '
                                    'imported: ' + our_module['error']))
                continue
            our_entry = our_module['names'].get(name)
            if our_entry is None:
                if is_foreign(their_entry):
                    result.foreign_missing.append(where)
                else:
                    differences.append((where, 'missing'))
                continue
            result.present += 1
            problem = kind_problem(their_entry, our_entry)
            if problem:
                differences.append((where, problem))
                continue
            if is_foreign(their_entry):
                continue    # the standard library's own class or function
            if their_entry['kind'] == 'class':
                if our_entry['kind'] != 'class':
                    differences.append((where, 'not a class here'))
                    continue
                result.present += compare_class(
                    where, their_entry, our_entry, differences)
            elif their_entry['kind'] == 'function':
                compare_callable(where, their_entry, our_entry, differences)
            elif their_entry['kind'] == 'data':
                compare_value(where, their_entry, our_entry, differences)
    return result
