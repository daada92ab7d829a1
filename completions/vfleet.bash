# bash completion for vfleet(1)
#
# Groups, commands and options are read from the program's own help
# (`vfleet --help`, `vfleet GROUP --help`), so the completion follows the
# installed vfleet and never needs a second list; guest, node, pool, project
# names and operation ids are asked of the master (`vfleet GROUP ls`, at most 2 seconds or
# VFLEET_COMPLETE_TIMEOUT, then killed, with the
# --master, --token, --pin and --ca given on the command line).

_vfleet_groups()
{
    vfleet --help 2>/dev/null |
        awk '/^Groups:/ { g = 1; next } g && /^$/ { exit } g && /^  [a-z]/ { print $1 }'
}

# The commands of a group: the first word of each line of its command list.
_vfleet_commands()
{
    vfleet "$1" --help 2>/dev/null |
        awk 'seen && /^$/ { exit } /^  [a-z]/ { seen = 1; print $1 }' | uniq
}

# Second words: "ip add", "ip rm".
_vfleet_subcommands()
{
    vfleet "$1" --help 2>/dev/null | awk -v c="$2" '$1 == c && $2 ~ /^[a-z]+$/ { print $2 }'
}

_vfleet_options()
{
    {
        vfleet "$1" --help 2>/dev/null
        vfleet --help 2>/dev/null
    } | grep -o -- '--[a-z][a-z-]*' | sort -u
}

# Names from the master's table (first column, header skipped); $2...: the
# global options that reach and trust the master.
_vfleet_names()
{
    local group=$1
    shift
    timeout -k 1 "${VFLEET_COMPLETE_TIMEOUT:-2}" vfleet "$@" "$group" ls </dev/null 2>/dev/null | awk 'NR > 1 { print $1 }'
}

_vfleet()
{
    local cur prev words cword
    if declare -F _init_completion >/dev/null; then
        _init_completion || return
    else
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD - 1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi

    # The words that are not global options: group, command, arguments.
    local i w group="" command="" sub="" master=() args=()
    for ((i = 1; i < cword; i++)); do
        w=${words[i]}
        case $w in
        --) return ;; # a command line for `guest exec`: nothing to complete
        --master | --token | --pin | --ca)
            master+=("$w" "${words[i + 1]}")
            ((i++))
            continue
            ;;
        --idempotency-key)
            ((i++))
            continue
            ;;
        --*) continue ;;
        esac
        if [ -z "$group" ]; then
            group=$w
        elif [ -z "$command" ]; then
            command=$w
        elif [ "$command" = ip ] && [ -z "$sub" ]; then
            sub=$w
        else
            args+=("$w")
        fi
    done

    # Option values.
    case $prev in
    --master | --token | --pin | --idempotency-key | --template | --cidr | --gateway | --ip | \
        --label | --constraint | --selector | --unlabel | --group | --memory | --rss | --swap | \
        --disk | --procs | --inodes | --nofile | --tcp-sockets | --cpu | --cpu-burst | \
        --cpu-weight | --io-weight | --net-in | --net-out | --timeout | --state | --ttl | \
        --description | --guests | --cpus | --addresses | --limit | --name | --guest | --parent)
        if [ "$prev" = --state ] && [ "$group" = op ]; then
            mapfile -t COMPREPLY < <(compgen -W "running done failed cancelled" -- "$cur")
        elif [ "$prev" = --state ]; then
            mapfile -t COMPREPLY < <(compgen -W "pending running stopped unknown lost orphan error" -- "$cur")
        fi
        return
        ;;
    --ca | -o | --root)
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return
        ;;
    --algorithm)
        mapfile -t COMPREPLY < <(compgen -W "spread binpack" -- "$cur")
        return
        ;;
    --role)
        mapfile -t COMPREPLY < <(compgen -W "admin operator tenant" -- "$cur")
        return
        ;;
    --project)
        mapfile -t COMPREPLY < <(compgen -W "$(_vfleet_names project "${master[@]}")" -- "$cur")
        return
        ;;
    --flags)
        mapfile -t COMPREPLY < <(compgen -W "private lock private,lock none" -- "$cur")
        return
        ;;
    --node | --to)
        mapfile -t COMPREPLY < <(compgen -W "$(_vfleet_names node "${master[@]}")" -- "$cur")
        return
        ;;
    esac

    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$(_vfleet_options "${group:-health}")" -- "$cur")
        return
    fi
    if [ -z "$group" ]; then
        mapfile -t COMPREPLY < <(compgen -W "$(_vfleet_groups) help" -- "$cur")
    elif [ -z "$command" ]; then
        [ "$group" = health ] && return
        mapfile -t COMPREPLY < <(compgen -W "$(_vfleet_commands "$group")" -- "$cur")
    elif [ "$command" = ip ] && [ -z "$sub" ]; then
        mapfile -t COMPREPLY < <(compgen -W "$(_vfleet_subcommands "$group" ip)" -- "$cur")
    elif [ "$group" = import ] || { [ "$group" = guest ] && [ "$command" = import ]; }; then
        # A source directory or configuration, an archive: files.
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
    elif [ ${#args[@]} -eq 0 ] && [ "$command" != create ] && [ "$command" != ls ]; then
        # The first argument of every other command names an existing object.
        mapfile -t COMPREPLY < <(compgen -W "$(_vfleet_names "$group" "${master[@]}")" -- "$cur")
    fi
}

complete -F _vfleet vfleet
