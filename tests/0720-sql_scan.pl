#!/usr/bin/perl
# tests/0720-sql_scan.pl - finds SQL built from strings in kiln's C sources.
#
#   perl tests/0720-sql_scan.pl [--allow FILE:FUNCTION ...] FILE_OR_DIR...
#
# Every statement that carries data must go through parameters
# (PQexecParams / kiln_pg_execp with $1..$n), never through text pasted into
# the SQL. The scan follows the SQL argument of every call to a libpq exec
# function (PQexec, PQexecParams, PQprepare, PQsendQuery, PQsendQueryParams,
# PQsendPrepare) and of every wrapper around them, found by itself: a
# function that passes one of its own parameters on as the SQL becomes an
# exec function too (kiln_pg_exec, kiln_tx_exec, ...), and its callers are
# checked in turn. The SQL argument passes when it is
#   - a string literal (adjacent literals included), or a ?: between literals;
#   - a parameter of the enclosing wrapper (its call sites are checked);
#   - a local variable whose every assignment is such a literal, and that no
#     string function (snprintf, strcat, memcpy, ...) writes into.
# Anything else fails: a variable filled by snprintf/strcat, a value
# computed by a function, a table entry, a field. So do printf-style formats
# and strcat/strcpy sources that start with an SQL keyword, and any use of
# PQescapeLiteral/PQescapeIdentifier/PQescapeString (quoting instead of
# parameters). A fixed SQL text that the scan cannot prove literal is allowed
# with --allow FILE:FUNCTION, after review.
#
# Prints one line per finding ("file:line: function: reason") and exits 1
# when there is any; prints the exec functions and call sites it checked.
use strict;
use warnings;

my %allow;
my @paths;
while (@ARGV) {
    my $a = shift @ARGV;
    if ($a eq '--allow') { $allow{shift @ARGV} = 1; next; }
    push @paths, $a;
}
my @files;
for my $p (@paths) {
    if (-d $p) { push @files, sort split /\n/, `find '$p' -name '*.c' -type f`; }
    elsif (-f $p) { push @files, $p; }
}
die "0720-sql_scan: no C files under @paths\n" unless @files;

# exec function -> index of its SQL argument (0-based)
my %exec = (PQexec => 1, PQexecParams => 1, PQprepare => 2, PQsendQuery => 1,
            PQsendQueryParams => 1, PQsendPrepare => 2);
my $KW = qr/(?:SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP|COPY|TRUNCATE|GRANT|REVOKE|SET|LOCK|NOTIFY|LISTEN|VALUES|WHERE|FROM|ORDER\s+BY)\b/i;
my $BUILDERS = qr/\b(?:v?snprintf|v?sprintf|v?asprintf|strn?cat|strn?cpy|stpn?cpy|memcpy|memmove|strlcat|strlcpy|kiln_sbuf_\w+|fprintf|fputs|fwrite)\s*\(/;

# ---- read every file: comments blanked, literals replaced by __S<n>__
my (%code, %lits, %funcs);
for my $f (@files) {
    open my $fh, '<', $f or die "$f: $!";
    local $/;
    my $src = <$fh>;
    close $fh;
    my @lit;
    my $out = '';
    pos($src) = 0;
    while (pos($src) < length $src) {
        if ($src =~ /\G(\/\*.*?\*\/)/gsc) { (my $c = $1) =~ s/[^\n]/ /g; $out .= $c; }
        elsif ($src =~ /\G(\/\/[^\n]*)/gc) { $out .= ' ' x length $1; }
        elsif ($src =~ /\G"((?:[^"\\\n]|\\.)*)"/gc) { push @lit, $1; $out .= "__S$#lit\__"; }
        elsif ($src =~ /\G'((?:[^'\\\n]|\\.)*)'/gc) { $out .= "__C__"; }
        elsif ($src =~ /\G(#[^\n]*(?:\\\n[^\n]*)*)/gc) { (my $c = $1) =~ s/[^\n]/ /g; $out .= $c; }
        elsif ($src =~ /\G([^\/"'#]+|.)/gsc) { $out .= $1; }
    }
    $code{$f} = $out;
    $lits{$f} = \@lit;
    # function definitions: name, parameter list, body span
    my @defs;
    while ($out =~ /^[A-Za-z_][\w \t\*]*?\b(\w+)\s*\(((?:[^()]|\((?:[^()]|\([^()]*\))*\))*)\)\s*\{/mg) {
        my ($name, $params, $open) = ($1, $2, pos($out) - 1);
        next if $name =~ /^(?:if|for|while|switch|return|sizeof)$/;
        my ($depth, $i) = (0, $open);
        for (; $i < length $out; $i++) {
            my $ch = substr($out, $i, 1);
            $depth++ if $ch eq '{';
            if ($ch eq '}') { last if --$depth == 0; }
        }
        push @defs, {name => $name, params => $params, start => $open, end => $i};
        pos($out) = $open + 1;
    }
    $funcs{$f} = \@defs;
}

sub line_of { my ($f, $pos) = @_; return 1 + (substr($code{$f}, 0, $pos) =~ tr/\n//); }
sub enclosing {
    my ($f, $pos) = @_;
    for my $d (@{$funcs{$f}}) { return $d if $pos > $d->{start} && $pos < $d->{end}; }
    return undef;
}
# splits "a, f(b, c), d" at top-level commas
sub split_args {
    my ($s) = @_;
    my @a;
    my ($depth, $cur) = (0, '');
    for my $ch (split //, $s) {
        if ($ch eq ',' && $depth == 0) { push @a, $cur; $cur = ''; next; }
        $depth++ if $ch =~ /[\(\[\{]/;
        $depth-- if $ch =~ /[\)\]\}]/;
        $cur .= $ch;
    }
    push @a, $cur;
    s/^\s+|\s+$//g for @a;
    return @a;
}
sub param_names {
    my ($params) = @_;
    return map { /(\w+)\s*(?:\[[^\]]*\])?\s*$/ ? $1 : '' } split_args($params);
}
my $LITS = qr/(?:__S\d+__\s*)+/;
sub is_literal {
    my ($e) = @_;
    $e =~ s/^\s*\(\s*(?:const\s+)?char\s*\*\s*\)\s*//;   # a cast to char *
    1 while $e =~ s/^\s*\((.*)\)\s*$/$1/s;
    return $e =~ /^\s*$LITS$/ || $e =~ /^[^?]*\?\s*$LITS:\s*$LITS$/;
}

my @findings;
my %checked;   # call sites checked, for the summary
sub finding {
    my ($f, $pos, $fn, $why) = @_;
    my $fname = $fn ? $fn->{name} : '(file scope)';
    return if $allow{"$f:$fname"};
    push @findings, sprintf("%s:%d: %s: %s", $f, line_of($f, $pos), $fname, $why);
}

# ---- follow the SQL argument of every exec call, discovering wrappers
my %done;
my $changed = 1;
while ($changed) {
    $changed = 0;
    for my $name (sort keys %exec) {
        my $idx = $exec{$name};
        for my $f (@files) {
            my $c = $code{$f};
            while ($c =~ /\b\Q$name\E\s*(\((?:[^()]++|(?1))*\))/g) {
                my ($pos, $args) = ($-[0], $1);
                my $fn = enclosing($f, $pos);
                next unless $fn;                       # a prototype or a definition
                next if $done{"$f:$pos"}++;
                $checked{$name}++;
                my @a = split_args(substr($args, 1, -1));
                my $sql = $a[$idx] // '';
                if (is_literal($sql)) { next; }
                if ($sql =~ /^\w+$/) {
                    my @pn = param_names($fn->{params});
                    my ($pi) = grep { $pn[$_] eq $sql } 0 .. $#pn;
                    if (defined $pi) {                 # a wrapper: check its callers
                        if (!exists $exec{$fn->{name}}) { $exec{$fn->{name}} = $pi; $changed = 1; }
                        next;
                    }
                    my $body = substr($c, $fn->{start}, $fn->{end} - $fn->{start});
                    if ($body =~ /$BUILDERS\s*&?\s*\Q$sql\E\b/) {
                        finding($f, $pos, $fn, "SQL in \"$sql\" is built with string functions (use \$n parameters)");
                        next;
                    }
                    my @rhs = $body =~ /\b\Q$sql\E\s*(?:\[[^\]]*\])?\s*=(?!=)\s*([^;]+);/g;
                    if (!@rhs) {
                        finding($f, $pos, $fn, "SQL in \"$sql\" has no literal value in this function");
                        next;
                    }
                    for my $r (@rhs) {
                        next if is_literal($r);
                        finding($f, $pos, $fn, "SQL in \"$sql\" is assigned a non-literal value: $r");
                        last;
                    }
                    next;
                }
                finding($f, $pos, $fn, "SQL argument of $name is not a string literal: $sql");
            }
        }
    }
}

# ---- SQL text formatted or concatenated anywhere, and escaping functions
for my $f (@files) {
    my $c = $code{$f};
    while ($c =~ /\b(v?snprintf|v?sprintf|v?asprintf|strn?cat|strn?cpy|stpn?cpy)\s*(\((?:[^()]++|(?2))*\))/g) {
        my ($fnname, $pos, $args) = ($1, $-[0], $2);
        for my $arg (split_args(substr($args, 1, -1))) {
            next unless $arg =~ /^$LITS$/;
            my $text = join '', map { $lits{$f}[$_] } $arg =~ /__S(\d+)__/g;
            next unless $text =~ /^\s*$KW/;
            next if $fnname =~ /printf/ && $text !~ /%(?!%)/;
            finding($f, $pos, enclosing($f, $pos), "SQL text built with $fnname: \"" . substr($text, 0, 60) . "\"");
        }
    }
    while ($c =~ /\b(PQescape(?:Literal|Identifier|StringConn|String|ByteaConn|Bytea))\s*\(/g) {
        finding($f, $-[0], enclosing($f, $-[0]), "$1: quoting values into SQL instead of parameters");
    }
}

printf "# exec functions: %s\n", join(', ', map { "$_(arg " . ($exec{$_} + 1) . ")" } sort keys %exec);
printf "# call sites checked: %d in %d files\n", scalar(keys %done), scalar(@files);
print "$_\n" for @findings;
exit(@findings ? 1 : 0);
