<?php
// Demo tenant "alpha": shows which secrets Bulkhead delivered to this app, and which it did not.
header('Content-Type: text/plain; charset=utf-8');

$names = ['DB_PASSWORD', 'API_TOKEN'];
echo "Hello from alpha, served by Bulkhead through php-fpm " . PHP_VERSION . ".\n\n";
foreach ($names as $name) {
    $value = $_SERVER[$name] ?? null;
    printf("%-12s %s\n", $name, $value === null ? '(not delivered to alpha)' : trim($value));
}
echo "\nRequest: " . ($_SERVER['REQUEST_METHOD'] ?? '?') . ' ' . ($_SERVER['REQUEST_URI'] ?? '?') . "\n";
echo "Host:    " . ($_SERVER['HTTP_HOST'] ?? '?') . "\n";
