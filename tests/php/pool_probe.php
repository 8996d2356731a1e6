<?php
// Attacks from PHP code in one app against everything a managed pool must not reach.
// `?list` prints the attack names; `?run=NAME&…` runs one and prints
// "NAME: blocked: why" or "NAME: SUCCEEDED: what". The test passes the targets.
header('Content-Type: text/plain');
$t = $_GET;
function out($name, $ok, $why) {
    echo $name, ': ', $ok ? 'SUCCEEDED' : 'blocked', ': ', $why, "\n";
}
function err() {
    $e = error_get_last();
    return $e ? $e['message'] : 'failed';
}
function read_attack($path) {
    return function () use ($path) {
        $data = @file_get_contents($path, false, null, 0, 4096);
        return $data === false ? [false, err()] : [true, strlen($data) . ' bytes of ' . $path];
    };
}
function list_attack($path) {
    return function () use ($path) {
        $names = @scandir($path);
        return $names === false ? [false, err()] : [true, implode(',', $names)];
    };
}
function write_attack($path) {
    return function () use ($path) {
        $n = @file_put_contents($path, 'owned');
        return $n === false ? [false, err()] : [true, "wrote $path"];
    };
}
function connect_attack($uri) {
    return function () use ($uri) {
        $s = @stream_socket_client($uri, $errno, $errstr, 2);
        return $s === false ? [false, "$errno $errstr"] : [true, "connected to $uri"];
    };
}
function run_attack($f) {
    return function () use ($f) {
        return $f();
    };
}
$attacks = [
    'read-other-root' => read_attack($t['b_root'] . '/index.php'),
    'list-other-root' => list_attack($t['b_root']),
    'read-other-writable' => read_attack($t['b_writable'] . '/data.txt'),
    'list-other-writable' => list_attack($t['b_writable']),
    'read-other-secret' => read_attack($t['b_secret']),
    'read-config' => read_attack($t['config']),
    'read-tls-key' => read_attack($t['tls_key']),
    'read-etc-shadow' => read_attack('/etc/shadow'),
    'read-etc-passwd' => read_attack('/etc/passwd'),
    'list-root-home' => list_attack('/root'),
    'list-home' => list_attack('/home'),
    'list-slash' => list_attack('/'),
    'list-var-lib-php' => list_attack('/var/lib/php/sessions'),
    'read-other-session' => read_attack('/tmp/sess_' . $t['b_session']),
    'read-other-session-host' => read_attack($t['b_tmp'] . '/sess_' . $t['b_session']),
    'read-other-environ' => read_attack('/proc/' . $t['b_fpm'] . '/environ'),
    'read-other-mem' => read_attack('/proc/' . $t['b_fpm'] . '/mem'),
    'read-broker-environ' => read_attack('/proc/' . $t['broker'] . '/environ'),
    'write-own-root' => write_attack($t['a_root'] . '/owned.php'),
    'write-other-writable' => write_attack($t['b_writable'] . '/owned.txt'),
    'write-slash' => write_attack('/owned'),
    'write-usr-lib' => write_attack('/usr/lib/owned'),
    'write-etc-php' => write_attack('/etc/php/owned'),
    'connect-other-fastcgi' => connect_attack('unix://' . $t['b_socket']),
    'connect-control-socket' => connect_attack('unix://' . $t['control']),
    'connect-tcp-loopback' => connect_attack('tcp://127.0.0.1:' . $t['tcp_port']),
    'connect-tcp-any-address' => connect_attack('tcp://' . $t['tcp_other'] . ':' . $t['tcp_port']),
    'connect-abstract-unix' => function () use ($t) {
        if (!function_exists('socket_create')) {
            return connect_attack("unix://\0" . $t['abstract'])();
        }
        $s = socket_create(AF_UNIX, SOCK_STREAM, 0);
        $ok = @socket_connect($s, "\0" . $t['abstract']);
        return $ok ? [true, 'connected to the abstract socket'] : [false, socket_strerror(socket_last_error($s))];
    },
    'system' => function () {
        $r = @system('id 2>&1', $code);
        return ($r === false || $code !== 0) ? [false, 'code ' . var_export($code, true) . ' ' . err()] : [true, $r];
    },
    'exec' => function () {
        $r = @exec('id', $lines, $code);
        return $code === 0 ? [true, implode(' ', $lines)] : [false, "code $code " . err()];
    },
    'shell_exec' => function () {
        $r = @shell_exec('id');
        return ($r === null || $r === false || $r === '') ? [false, err()] : [true, $r];
    },
    'passthru' => function () {
        ob_start();
        @passthru('id', $code);
        $o = ob_get_clean();
        return $code === 0 ? [true, $o] : [false, "code $code"];
    },
    'popen' => function () {
        $p = @popen('id', 'r');
        if ($p === false) return [false, err()];
        $o = fread($p, 100);
        $code = pclose($p);
        return ($code === 0 && $o !== '') ? [true, $o] : [false, "code $code"];
    },
    'proc_open-shell' => function () {
        $p = @proc_open('id', [1 => ['pipe', 'w']], $pipes);
        if ($p === false) return [false, err()];
        $o = stream_get_contents($pipes[1]);
        $code = proc_close($p);
        return ($code === 0 && $o !== '') ? [true, $o] : [false, "code $code"];
    },
    'proc_open-loader' => function () {
        foreach (['/lib64/ld-linux-x86-64.so.2', '/lib/ld-linux-aarch64.so.1'] as $ld) {
            $p = @proc_open([$ld, '/usr/bin/id'], [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
            if ($p === false) continue;
            $o = stream_get_contents($pipes[1]);
            $code = proc_close($p);
            if ($code === 0 && $o !== '') return [true, $o];
        }
        return [false, 'the loader runs no program: ' . err()];
    },
    'mail' => function () {
        $ok = @mail('root@localhost', 'x', 'y');
        return $ok ? [true, 'mail() ran sendmail'] : [false, err()];
    },
    'mail-ld-preload' => function () use ($t) {
        $lib = '/tmp/evil.so';
        @copy('/usr/lib/x86_64-linux-gnu/libc.so.6', $lib);
        putenv('LD_PRELOAD=' . $lib);
        $ok = @mail('root@localhost', 'x', 'y');
        return $ok ? [true, 'sendmail ran with LD_PRELOAD'] : [false, err()];
    },
    'kill-other-pool' => function () use ($t) {
        if (!function_exists('posix_kill')) return [false, 'posix_kill unavailable'];
        $ok = @posix_kill((int) $t['b_fpm'], 0);
        return $ok ? [true, 'signal 0 delivered'] : [false, posix_strerror(posix_get_last_error())];
    },
    'kill-broker' => function () use ($t) {
        if (!function_exists('posix_kill')) return [false, 'posix_kill unavailable'];
        $ok = @posix_kill((int) $t['broker'], 0);
        return $ok ? [true, 'signal 0 delivered'] : [false, posix_strerror(posix_get_last_error())];
    },
    'sysv-shm-of-other' => function () use ($t) {
        if (!function_exists('shmop_open')) return [false, 'shmop unavailable'];
        $id = @shmop_open((int) $t['b_shm'], 'a', 0, 0);
        return $id ? [true, 'opened B\'s segment'] : [false, err()];
    },
    'sysv-msg-of-other' => function () use ($t) {
        if (!function_exists('msg_queue_exists')) return [false, 'sysvmsg unavailable'];
        return msg_queue_exists((int) $t['b_shm']) ? [true, 'B\'s queue is visible'] : [false, 'no such queue'];
    },
    'sysv-sem-of-other' => function () use ($t) {
        if (!function_exists('shmop_open')) return [false, 'shmop unavailable'];
        // B's semaphore shares the key: a visible one would be attachable read-only too.
        $id = @shmop_open((int) $t['b_shm'] + 1, 'a', 0, 0);
        return $id ? [true, 'opened B\'s second segment'] : [false, err()];
    },
    'dl' => function () {
        if (!function_exists('dl')) return [false, 'dl() is not available'];
        $ok = @dl('pgsql.so');
        return $ok ? [true, 'loaded an extension'] : [false, err()];
    },
    'ffi' => function () {
        if (!class_exists('FFI')) return [false, 'FFI is not loaded'];
        try {
            $ffi = FFI::cdef('int getuid(void);');
            return [true, 'FFI call: ' . $ffi->getuid()];
        } catch (Throwable $e) {
            return [false, $e->getMessage()];
        }
    },
    'fill-tmp' => function () {
        $f = @fopen('/tmp/fill', 'w');
        if (!$f) return [false, err()];
        $chunk = str_repeat('x', 1 << 20);
        $total = 0;
        for ($i = 0; $i < 200; $i++) {
            $n = @fwrite($f, $chunk);
            if ($n === false || $n < strlen($chunk)) break;
            $total += $n;
        }
        fclose($f);
        @unlink('/tmp/fill');
        return $total >= (200 << 20) ? [true, "wrote $total bytes"] : [false, "stopped at $total bytes"];
    },
    'memory-bomb' => function () {
        @ini_set('memory_limit', '-1');
        $a = [];
        for ($i = 0; $i < 64; $i++) {
            $a[] = str_repeat('m', 64 << 20);
        }
        return [true, 'allocated 4 GiB'];
    },
    'fork-bomb' => function () {
        if (function_exists('pcntl_fork')) {
            $n = 0;
            for ($i = 0; $i < 500; $i++) {
                $pid = @pcntl_fork();
                if ($pid === 0) { sleep(5); exit(0); }
                if ($pid < 0) break;
                $n++;
            }
            return $n >= 500 ? [true, "forked $n"] : [false, "fork failed after $n"];
        }
        $n = 0;
        for ($i = 0; $i < 50; $i++) {
            $p = @proc_open(['/usr/sbin/php-fpm8.2', '-v'], [], $pipes);
            if ($p === false) break;
            if (proc_close($p) !== 0) break;
            $n++;
        }
        return $n >= 50 ? [true, "started $n processes"] : [false, "no pcntl; proc_open failed after $n: " . err()];
    },
];
if (isset($t['list'])) {
    echo implode("\n", array_keys($attacks)), "\n";
    exit;
}
$name = $t['run'] ?? '';
if (!isset($attacks[$name])) {
    http_response_code(404);
    exit;
}
[$ok, $why] = $attacks[$name]();
out($name, $ok, str_replace("\n", ' ', (string) $why));
