<?php
// Demo tenant "beta": shows which secrets Bulkhead delivered to this app, and which it did not.
header('Content-Type: text/plain; charset=utf-8');

$names = ['DB_PASSWORD', 'API_TOKEN'];
echo "Hello from beta, served by Bulkhead through php-fpm " . PHP_VERSION . ".\n\n";
foreach ($names as $name) {
    $value = $_SERVER[$name] ?? null;
    printf("%-12s %s\n", $name, $value === null ? '(not delivered to beta)' : trim($value));
}
echo "\nRequest: " . ($_SERVER['REQUEST_METHOD'] ?? '?') . ' ' . ($_SERVER['REQUEST_URI'] ?? '?') . "\n";
echo "Host:    " . ($_SERVER['HTTP_HOST'] ?? '?') . "\n";

// What this tenant's PHP cannot reach, tried live on every request.
echo "\nTrying to reach the other tenant (alpha) from beta's PHP:\n";
$demo = dirname(__DIR__, 2);
foreach (["$demo/alpha/secrets/db-password", "$demo/alpha/public/index.php", "$demo/bulkhead.toml.in", '/etc/shadow'] as $path) {
    $data = @file_get_contents($path);
    $error = error_get_last()['message'] ?? 'failed';
    error_clear_last();
    printf("  read %-50s %s\n", $path, $data === false ? "refused: $error" : 'READ ' . strlen($data) . ' BYTES');
}
$out = @shell_exec('id');
printf("  run a program (shell_exec('id'))%s %s\n", str_repeat(' ', 22), $out ? "RAN: $out" : 'refused');
